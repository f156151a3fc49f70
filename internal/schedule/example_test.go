package schedule_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/kjobs/kjobs/internal/schedule"
)

// NextRuns shows runs in the schedule's own timezone, across a change to
// summer time.
func ExampleNextRuns() {
	from := time.Date(2026, time.March, 28, 0, 0, 0, 0, time.UTC)
	runs, err := schedule.NextRuns("0 9 * * *", "Europe/Paris", from, 3)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range runs {
		fmt.Println(r.Format(time.RFC3339))
	}
	// Output:
	// 2026-03-28T09:00:00+01:00
	// 2026-03-29T09:00:00+02:00
	// 2026-03-30T09:00:00+02:00
}

// Validate blames the field that PingSource would reject, with the cron
// parser's own message.
func ExampleValidate() {
	for _, s := range []struct{ cron, timezone string }{
		{"*/15 * * * *", "UTC"},
		{"@every 1m", ""},
		{"0 9 * * *", "Europe/Pariss"},
	} {
		var se *schedule.Error
		if err := schedule.Validate(s.cron, s.timezone); errors.As(err, &se) {
			fmt.Printf("%s: %s\n", se.Field, se.Detail)
			continue
		}
		fmt.Printf("%q in %q is valid\n", s.cron, s.timezone)
	}
	// Output:
	// "*/15 * * * *" in "UTC" is valid
	// cron: unsupported descriptor @every
	// timezone: provided bad location Europe/Pariss: unknown time zone Europe/Pariss
}
