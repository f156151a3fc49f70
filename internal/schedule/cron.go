package schedule

import (
	"fmt"
	"strings"
	"time"
	// PingSource accepts any IANA zone name, and the API's static image has
	// no zoneinfo of its own, so the zone database is built in.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
)

// The fields an Error names: the API's names for a schedule's fields.
const (
	FieldCron     = "cron"
	FieldTimezone = "timezone"
)

// Error is a schedule that PingSource would reject, blamed on the field
// Knative's own validation blames, so that the API can answer 400 and say
// what to fix.
type Error struct {
	// Field is FieldCron or FieldTimezone.
	Field string
	// Detail is the cron parser's own message, as Knative reports it.
	Detail string
}

func (e *Error) Error() string { return e.Field + ": " + e.Detail }

// parser is the parser of PingSource's validation and of its adapter
// (knative.dev/eventing pkg/apis/sources/v1/ping_validation.go and
// pkg/adapter/mtping/adapter.go): five fields, an optional leading seconds
// field, and descriptors such as @daily.
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Spec is a parsed schedule: the times it fires at.
type Spec struct {
	sched cron.Schedule
	loc   *time.Location
}

// Parse reads a cron expression and an optional IANA timezone with exactly
// the rules PingSource applies: @every is refused, and the timezone is
// handed to the parser as a CRON_TZ= prefix. An invalid schedule is an
// *Error.
//
// An empty cron expression is refused, as PingSource's Validate refuses it;
// PingSource's defaulting, which runs first in its webhook, would make it
// "* * * * *" and a forgotten field a job every minute.
func Parse(cronExpr, timezone string) (spec *Spec, err error) {
	// Knative looks for the word anywhere, not only at the start.
	if strings.Contains(cronExpr, "@every") {
		return nil, &Error{Field: FieldCron, Detail: "unsupported descriptor @every"}
	}
	full := cronExpr
	if timezone != "" {
		full = "CRON_TZ=" + timezone + " " + cronExpr
	}
	// robfig/cron v3.0.1 slices out of range on a TZ= or CRON_TZ= prefix
	// with no space after it; Knative's webhook would fail on such a
	// schedule, so it is refused rather than allowed to crash the API.
	defer func() {
		if r := recover(); r != nil {
			spec, err = nil, &Error{Field: FieldCron, Detail: fmt.Sprintf("the cron parser failed on %q (%v); a TZ= or CRON_TZ= prefix must be followed by a space and the schedule", cronExpr, r)}
		}
	}()
	sched, err := parser.Parse(full)
	if err != nil {
		// Knative blames the timezone exactly when the parser's message
		// starts so, even for a CRON_TZ= written into the cron expression.
		field := FieldCron
		if strings.HasPrefix(err.Error(), "provided bad location") {
			field = FieldTimezone
		}
		return nil, &Error{Field: field, Detail: err.Error()}
	}
	// Without @every the parser only returns *SpecSchedule.
	loc := sched.(*cron.SpecSchedule).Location
	if loc == time.Local {
		// No timezone: PingSource's adapter runs in a container whose local
		// time is UTC, so the schedule runs in UTC wherever kjobs runs.
		loc = time.UTC
	}
	return &Spec{sched: sched, loc: loc}, nil
}

// Next returns the first run strictly after t, in the schedule's timezone,
// or the zero time if there is none within five years (as for "0 0 30 2 *",
// which PingSource accepts).
func (s *Spec) Next(t time.Time) time.Time {
	return s.sched.Next(t.In(s.loc))
}

// Validate reports whether PingSource would accept the cron expression and
// timezone; an invalid schedule is an *Error. Knative's own validation is
// checked against it in the tests.
func Validate(cronExpr, timezone string) error {
	_, err := Parse(cronExpr, timezone)
	return err
}

// NextRuns returns the first n runs of the schedule strictly after from, in
// the schedule's timezone (UTC when it has none). It returns fewer when the
// schedule stops firing within five years of a run. An invalid schedule is
// an *Error.
func NextRuns(cronExpr, timezone string, from time.Time, n int) ([]time.Time, error) {
	if n < 0 {
		return nil, fmt.Errorf("schedule.NextRuns: n is %d, want 0 or more", n)
	}
	spec, err := Parse(cronExpr, timezone)
	if err != nil {
		return nil, err
	}
	runs := make([]time.Time, 0, n)
	for t := from; len(runs) < n; {
		if t = spec.Next(t); t.IsZero() {
			break
		}
		runs = append(runs, t)
	}
	return runs, nil
}
