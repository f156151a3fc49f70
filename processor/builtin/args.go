package builtin

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kjobs/kjobs/processor/function"
)

// checkNames rejects every argument fn does not accept, and lists the ones
// it does, so that a misspelt name is not silently ignored. The schemas say
// the same (additionalProperties: false); this keeps a processor run by
// hand as strict.
func checkNames(fn string, args function.Args, accepted ...string) error {
	var unknown []string
	for name := range args {
		if !slices.Contains(accepted, name) {
			unknown = append(unknown, strconv.Quote(name))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	noun := "argument"
	if len(unknown) > 1 {
		noun = "arguments"
	}
	return fmt.Errorf("args: unknown %s %s; %s accepts %s", noun, strings.Join(unknown, ", "), fn, strings.Join(accepted, ", "))
}

// numeric reads a number argument: a JSON number, or a string holding one,
// as every argument was before args were JSON, so that requests written
// then still work. ok is false for any other value.
func numeric(v any) (f float64, ok bool) {
	var s string
	switch v := v.(type) {
	case json.Number:
		s = v.String()
	case string:
		s = v
	case float64:
		return v, !math.IsNaN(v)
	case int:
		return float64(v), true
	default:
		return 0, false
	}
	// ParseFloat accepts "NaN" and "Inf", which no range check rejects.
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
}

// number reads the decimal argument name, or def when it is absent, and
// checks that it lies in [lo, hi].
func number(args function.Args, name string, def, lo, hi float64) (float64, error) {
	v, ok := args[name]
	if !ok {
		return def, nil
	}
	f, ok := numeric(v)
	if !ok || f < lo || f > hi {
		return 0, fmt.Errorf("args.%s: got %s, want a number from %g to %g", name, show(v), lo, hi)
	}
	return f, nil
}

// wholeNumber reads the integer argument name, or def when it is absent,
// and checks that it is at least lo and, unless hi is math.MaxInt, at most
// hi.
func wholeNumber(args function.Args, name string, def, lo, hi int) (int, error) {
	v, ok := args[name]
	if !ok {
		return def, nil
	}
	f, ok := numeric(v)
	if !ok || f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
		want := fmt.Sprintf("a whole number from %d to %d", lo, hi)
		if hi == math.MaxInt {
			want = fmt.Sprintf("a whole number of at least %d", lo)
		}
		return 0, fmt.Errorf("args.%s: got %s, want %s", name, show(v), want)
	}
	return int(f), nil
}

// show writes an argument's value as JSON, as the request had it.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// seconds converts a number of seconds, decimals allowed, to a duration.
func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second))
}

// pause waits for d, or until ctx is done, in which case it returns why ctx
// ended: for the processor, the signal that asked it to stop.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
