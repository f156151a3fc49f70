package schedule_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"

	"github.com/kjobs/kjobs/internal/schedule"
)

// validateCases are schedules with the field Validate must blame, "" for
// valid ones. They also seed FuzzValidate.
var validateCases = []struct {
	cron, timezone string
	wantField      string
}{
	{"* * * * *", "", ""},
	{"*/5 * * * *", "", ""},
	{"0 9 * * 1-5", "", ""},
	{"0 9 * * MON-FRI", "", ""},
	{"0 0 1 JAN *", "", ""},
	{"0 9 * * ?", "", ""},
	{"  0   9 * * *  ", "", ""},
	{"*/1 * * * * *", "", ""},
	{"30 0 9 * * *", "", ""},
	{"@yearly", "", ""},
	{"@annually", "", ""},
	{"@monthly", "", ""},
	{"@weekly", "", ""},
	{"@daily", "", ""},
	{"@midnight", "", ""},
	{"@hourly", "Asia/Tokyo", ""},
	// Accepted, though it never fires.
	{"0 0 30 2 *", "", ""},
	{"0 9 * * *", "Europe/Paris", ""},
	{"0 9 * * *", "America/New_York", ""},
	{"0 9 * * *", "Asia/Kolkata", ""},
	{"0 9 * * *", "UTC", ""},
	{"0 9 * * *", "Etc/GMT+5", ""},
	// The parser stops the zone name at the first space.
	{"0 9 * * *", "Europe/Paris ", ""},
	{"CRON_TZ=Asia/Tokyo 0 9 * * *", "", ""},
	{"TZ=UTC 0 9 * * *", "", ""},

	{"", "", schedule.FieldCron},
	{"   ", "", schedule.FieldCron},
	{"* * * *", "", schedule.FieldCron},
	{"* * * * * * *", "", schedule.FieldCron},
	{"60 * * * *", "", schedule.FieldCron},
	{"* 24 * * *", "", schedule.FieldCron},
	{"0 0 0 * *", "", schedule.FieldCron},
	{"0 0 * 13 *", "", schedule.FieldCron},
	{"0 0 * * 8", "", schedule.FieldCron},
	{"*/0 * * * *", "", schedule.FieldCron},
	{"5-1 * * * *", "", schedule.FieldCron},
	{"0 0 L * *", "", schedule.FieldCron},
	{"a b c d e", "", schedule.FieldCron},
	{"@every 1m", "", schedule.FieldCron},
	{"@every 5s", "UTC", schedule.FieldCron},
	{"0 0 * * * @every", "", schedule.FieldCron},
	{"@reboot", "", schedule.FieldCron},
	{"@daily 1", "", schedule.FieldCron},
	{"daily", "", schedule.FieldCron},
	// The parser panics on these; Knative's validation with it.
	{"TZ=UTC", "", schedule.FieldCron},
	{"CRON_TZ=", "", schedule.FieldCron},

	{"0 9 * * *", "Mars/Olympus_Mons", schedule.FieldTimezone},
	{"0 9 * * *", "Europe/Pariss", schedule.FieldTimezone},
	{"0 9 * * *", "America/New York", schedule.FieldTimezone},
	{"0 9 * * *", "../etc/passwd", schedule.FieldTimezone},
	{"0 9 * * *", "+02:00", schedule.FieldTimezone},
	{"0 9 * * *", "CRON_TZ=UTC", schedule.FieldTimezone},
	// Knative blames the timezone for a bad zone inside the cron field too.
	{"CRON_TZ=Mars/Olympus_Mons 0 9 * * *", "", schedule.FieldTimezone},
	// The zone is parsed before the fields.
	{"not a cron", "Mars/Olympus_Mons", schedule.FieldTimezone},
}

// knativeFields validates the schedule with Knative's own PingSource
// validation and returns the fields it blames, in the API's names. A panic
// counts as a rejection of the cron field, as the webhook would refuse the
// object.
func knativeFields(t testing.TB, cronExpr, timezone string) (fields []string) {
	defer func() {
		if r := recover(); r != nil {
			fields = []string{schedule.FieldCron}
		}
	}()
	spec := sourcesv1.PingSourceSpec{
		SourceSpec: duckv1.SourceSpec{Sink: duckv1.Destination{Ref: &duckv1.KReference{
			APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: "kjobs",
		}}},
		Schedule: cronExpr,
		Timezone: timezone,
	}
	fe := spec.Validate(context.Background()).Filter(apis.ErrorLevel)
	if fe == nil {
		return nil
	}
	for _, e := range fe.WrappedErrors() {
		for _, p := range e.Paths {
			switch p {
			case "schedule":
				fields = append(fields, schedule.FieldCron)
			case "timezone":
				fields = append(fields, schedule.FieldTimezone)
			default:
				t.Errorf("Knative blames %s of PingSourceSpec{Schedule: %q, Timezone: %q}: %v", p, cronExpr, timezone, e)
			}
		}
	}
	return fields
}

// field returns the field a Validate error blames, "" for nil.
func field(t testing.TB, err error) string {
	if err == nil {
		return ""
	}
	var se *schedule.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *schedule.Error", err, err)
	}
	return se.Field
}

func TestValidateAgreesWithKnative(t *testing.T) {
	t.Parallel()
	for _, tc := range validateCases {
		t.Run(fmt.Sprintf("%q/%q", tc.cron, tc.timezone), func(t *testing.T) {
			t.Parallel()
			err := schedule.Validate(tc.cron, tc.timezone)
			if got := field(t, err); got != tc.wantField {
				t.Errorf("Validate(%q, %q) = %v, want an error in field %q", tc.cron, tc.timezone, err, tc.wantField)
			}
			kn := knativeFields(t, tc.cron, tc.timezone)
			if (tc.wantField == "") != (len(kn) == 0) || tc.wantField != "" && !slices.Contains(kn, tc.wantField) {
				t.Errorf("Knative blames fields %q, want %q", kn, tc.wantField)
			}
		})
	}
}

func TestValidateDetail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cron, timezone string
		want           *schedule.Error
	}{
		{"@every 1m", "", &schedule.Error{Field: "cron", Detail: "unsupported descriptor @every"}},
		{"", "", &schedule.Error{Field: "cron", Detail: "empty spec string"}},
		{"* * * *", "", &schedule.Error{Field: "cron", Detail: "expected 5 to 6 fields, found 4: [* * * *]"}},
		{"61 * * * *", "", &schedule.Error{Field: "cron", Detail: "end of range (61) above maximum (59): 61"}},
		{"0 9 * * *", "Mars/Olympus_Mons", &schedule.Error{Field: "timezone", Detail: "provided bad location Mars/Olympus_Mons: unknown time zone Mars/Olympus_Mons"}},
	}
	for _, tc := range tests {
		t.Run(tc.cron+"/"+tc.timezone, func(t *testing.T) {
			t.Parallel()
			var got *schedule.Error
			if err := schedule.Validate(tc.cron, tc.timezone); !errors.As(err, &got) {
				t.Fatalf("Validate(%q, %q) = %v, want a *schedule.Error", tc.cron, tc.timezone, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Validate(%q, %q) (-want +got):\n%s", tc.cron, tc.timezone, diff)
			}
		})
	}
}

func TestNextRuns(t *testing.T) {
	t.Parallel()
	// A Saturday; Europe/Paris moves to summer time the next night.
	from := time.Date(2026, time.March, 28, 0, 0, 0, 0, time.UTC)
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name           string
		cron, timezone string
		n              int
		want           []time.Time
	}{
		{"no timezone is UTC", "30 9 * * *", "", 2, []time.Time{
			time.Date(2026, time.March, 28, 9, 30, 0, 0, time.UTC),
			time.Date(2026, time.March, 29, 9, 30, 0, 0, time.UTC),
		}},
		{"across daylight saving", "0 9 * * *", "Europe/Paris", 3, []time.Time{
			time.Date(2026, time.March, 28, 9, 0, 0, 0, paris),
			time.Date(2026, time.March, 29, 9, 0, 0, 0, paris),
			time.Date(2026, time.March, 30, 9, 0, 0, 0, paris),
		}},
		{"seconds field", "*/20 * * * * *", "", 3, []time.Time{
			time.Date(2026, time.March, 28, 0, 0, 20, 0, time.UTC),
			time.Date(2026, time.March, 28, 0, 0, 40, 0, time.UTC),
			time.Date(2026, time.March, 28, 0, 1, 0, 0, time.UTC),
		}},
		{"descriptor", "@monthly", "", 2, []time.Time{
			time.Date(2026, time.April, 1, 0, 0, 0, 0, time.UTC),
			time.Date(2026, time.May, 1, 0, 0, 0, 0, time.UTC),
		}},
		// from is 09:00 in Tokyo, and runs are strictly after it.
		{"zone inside the cron field", "CRON_TZ=Asia/Tokyo 0 9 * * *", "", 1, []time.Time{
			time.Date(2026, time.March, 29, 9, 0, 0, 0, tokyo),
		}},
		{"never fires", "0 0 30 2 *", "", 3, []time.Time{}},
		{"none asked", "* * * * *", "", 0, []time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := schedule.NextRuns(tc.cron, tc.timezone, from, tc.n)
			if err != nil {
				t.Fatalf("NextRuns: %v", err)
			}
			// Compare instants and zones: the API shows runs in the
			// schedule's own zone.
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b time.Time) bool {
				return a.Equal(b) && a.Location().String() == b.Location().String()
			})); diff != "" {
				t.Errorf("NextRuns(%q, %q) (-want +got):\n%s", tc.cron, tc.timezone, diff)
			}
		})
	}
}

func TestNextRunsErrors(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, time.March, 28, 0, 0, 0, 0, time.UTC)
	if _, err := schedule.NextRuns("bad", "", from, 1); field(t, err) != schedule.FieldCron {
		t.Errorf("NextRuns of a bad cron = %v, want a cron *schedule.Error", err)
	}
	if _, err := schedule.NextRuns("* * * * *", "", from, -1); err == nil {
		t.Errorf("NextRuns with n = -1 succeeded, want an error")
	}
}

// FuzzValidate checks that Validate never panics, always agrees with
// Knative's own PingSource validation, and that whatever it accepts has
// increasing next runs.
func FuzzValidate(f *testing.F) {
	for _, tc := range validateCases {
		f.Add(tc.cron, tc.timezone)
	}
	from := time.Date(2026, time.March, 28, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, cronExpr, timezone string) {
		err := schedule.Validate(cronExpr, timezone)
		got := field(t, err)
		kn := knativeFields(t, cronExpr, timezone)
		if (got == "") != (len(kn) == 0) || got != "" && !slices.Contains(kn, got) {
			t.Fatalf("Validate(%q, %q) = %v, but Knative blames %q", cronExpr, timezone, err, kn)
		}
		if err != nil {
			return
		}
		runs, err := schedule.NextRuns(cronExpr, timezone, from, 3)
		if err != nil {
			t.Fatalf("NextRuns(%q, %q) of a valid schedule: %v", cronExpr, timezone, err)
		}
		last := from
		for _, r := range runs {
			if !r.After(last) {
				t.Fatalf("NextRuns(%q, %q) = %v, not increasing after %v", cronExpr, timezone, runs, from)
			}
			last = r
		}
	})
}
