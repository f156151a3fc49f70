package function

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kjobs/kjobs/internal/job"
)

// checkNames rejects every argument fn does not accept, and lists the ones
// it does, so that a misspelt name is not silently ignored.
func checkNames(fn string, args job.Args, accepted ...string) error {
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
	return &job.FieldError{
		Field:  "args",
		Detail: fmt.Sprintf("unknown %s %s; %s accepts %s", noun, strings.Join(unknown, ", "), fn, strings.Join(accepted, ", ")),
	}
}

// number reads the decimal argument name, or def when it is absent, and
// checks that it lies in [lo, hi].
func number(args job.Args, name string, def, lo, hi float64) (float64, error) {
	s, ok := args[name]
	if !ok {
		return def, nil
	}
	// ParseFloat accepts "NaN", which no range check rejects.
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || v < lo || v > hi {
		return 0, &job.FieldError{Field: "args." + name, Detail: fmt.Sprintf("got %q, want a number from %g to %g", s, lo, hi)}
	}
	return v, nil
}

// wholeNumber reads the integer argument name, or def when it is absent,
// and checks that it is at least lo and, unless hi is math.MaxInt, at most
// hi.
func wholeNumber(args job.Args, name string, def, lo, hi int) (int, error) {
	s, ok := args[name]
	if !ok {
		return def, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		want := fmt.Sprintf("a whole number from %d to %d", lo, hi)
		if hi == math.MaxInt {
			want = fmt.Sprintf("a whole number of at least %d", lo)
		}
		return 0, &job.FieldError{Field: "args." + name, Detail: fmt.Sprintf("got %q, want %s", s, want)}
	}
	return v, nil
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
