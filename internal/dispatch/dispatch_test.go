package dispatch

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/kjobs/kjobs/internal/catalog"
	"github.com/kjobs/kjobs/internal/event"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner/local"
	"github.com/kjobs/kjobs/internal/store"
	"github.com/kjobs/kjobs/internal/testenv"
)

var processor string

func TestMain(m *testing.M) {
	testenv.Main(m, map[*string]string{&processor: "github.com/kjobs/kjobs/processor"})
}

func setup(t *testing.T) (*Dispatcher, *store.Store) {
	t.Helper()
	st := store.New(testenv.Redis(t), store.Options{})
	r := local.New(local.Config{Processor: processor, Dir: t.TempDir()})
	t.Cleanup(r.Close)
	return New(st, r, slog.New(slog.NewTextHandler(io.Discard, nil))), st
}

func requested(t *testing.T, data string) cloudevents.Event {
	t.Helper()
	e := cloudevents.NewEvent()
	e.SetID(uuid.NewString())
	e.SetType(event.TypeRequested)
	e.SetSource(event.SourceAPI)
	if err := e.SetData(cloudevents.ApplicationJSON, []byte(data)); err != nil {
		t.Fatal(err)
	}
	return e
}

func status(t *testing.T, res error) int {
	t.Helper()
	if cloudevents.IsACK(res) {
		return http.StatusOK
	}
	var r *cehttp.Result
	if !protocol.ResultAs(res, &r) {
		t.Fatalf("result %v has no HTTP status", res)
	}
	return r.StatusCode
}

func TestReceive(t *testing.T) {
	tests := []struct {
		name       string
		data       string
		deliveries int
		want       []int
		wantStatus job.Status
		attempts   int
	}{
		{"success", `{"function":"echo","args":{"k":"v"}}`, 2, []int{200, 200}, job.Succeeded, 1},
		{"failure is retried, each delivery one attempt", `{"function":"fail","args":{"message":"no"}}`, 3, []int{500, 500, 500}, job.Retrying, 3},
		{"flaky succeeds at the second delivery", `{"function":"flaky","args":{"failures":"1"}}`, 3, []int{500, 200, 200}, job.Succeeded, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, st := setup(t)
			e := requested(t, tc.data)
			var got []int
			for range tc.deliveries {
				got = append(got, status(t, d.Receive(context.Background(), e)))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("answers (-want +got):\n%s", diff)
			}
			j, err := st.Get(context.Background(), e.ID())
			if err != nil {
				t.Fatal(err)
			}
			if j.Status != tc.wantStatus || len(j.Attempts) != tc.attempts {
				t.Errorf("job %s with %d attempts, want %s with %d", j.Status, len(j.Attempts), tc.wantStatus, tc.attempts)
			}
		})
	}
}

// TestDeclaredFunctions checks that the dispatcher runs a function only as
// declared: a declared one runs its own binary, and one whose args fail its
// schema, or that cannot run here, is answered 400 with nothing recorded.
func TestDeclaredFunctions(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "resize")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nprintf 'resized %s' \"$KJOBS_ARGS\" > \"$KJOBS_TERMINATION_LOG\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	functions := catalog.New(true)
	if err := functions.Set(map[string]string{
		"resize":    "local: " + bin + "\nargsSchema: {type: object, properties: {width: {type: integer, minimum: 1}}}",
		"thumbnail": "image: ghcr.io/team/thumbnail:1",
	}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		data    string
		want    int
		message string // the attempt's, for a job that ran
	}{
		{"declared", `{"function":"resize","args":{"width":300}}`, http.StatusOK, `resized {"width":300}`},
		{"args its schema refuses", `{"function":"resize","args":{"width":0}}`, http.StatusBadRequest, ""},
		{"an image, which make run cannot run", `{"function":"thumbnail"}`, http.StatusBadRequest, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := store.New(testenv.Redis(t), store.Options{})
			r := local.New(local.Config{Processor: processor, Functions: functions, Dir: t.TempDir()})
			t.Cleanup(r.Close)
			d := New(st, r, slog.New(slog.NewTextHandler(io.Discard, nil)))
			d.SetFunctions(functions)
			e := requested(t, tc.data)
			if got := status(t, d.Receive(context.Background(), e)); got != tc.want {
				t.Errorf("answer %d, want %d", got, tc.want)
			}
			j, err := st.Get(context.Background(), e.ID())
			switch {
			case tc.want != http.StatusOK && err == nil:
				t.Error("a job was recorded for it")
			case tc.want == http.StatusOK && (err != nil || len(j.Attempts) != 1 || j.Attempts[0].Message != tc.message):
				t.Errorf("job = %+v, %v; want one attempt with message %q", j, err, tc.message)
			}
		})
	}
}

// TestNeverSucceeds checks that an event that can never become a job is
// answered 400, which Knative sends straight to the dead-letter sink, and
// that nothing runs or is recorded for it.
func TestNeverSucceeds(t *testing.T) {
	tests := []struct {
		name  string
		event func(t *testing.T) cloudevents.Event
	}{
		{"unknown function", func(t *testing.T) cloudevents.Event { return requested(t, `{"function":"nope"}`) }},
		{"bad args", func(t *testing.T) cloudevents.Event {
			return requested(t, `{"function":"sleep","args":{"seconds":"x"}}`)
		}},
		{"malformed data", func(t *testing.T) cloudevents.Event { return requested(t, `{"function":`) }},
		{"id that cannot name a Job", func(t *testing.T) cloudevents.Event {
			e := requested(t, `{"function":"echo"}`)
			e.SetID("Not/A_Name")
			return e
		}},
		{"foreign event type", func(t *testing.T) cloudevents.Event {
			e := requested(t, `{"function":"echo"}`)
			e.SetType("com.example.other")
			return e
		}},
		{"ping without the kjobs origin", func(t *testing.T) cloudevents.Event {
			e := requested(t, `{"function":"echo"}`)
			e.SetType(event.TypePing)
			return e
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, st := setup(t)
			e := tc.event(t)
			if got := status(t, d.Receive(context.Background(), e)); got != http.StatusBadRequest {
				t.Errorf("answer %d, want 400", got)
			}
			if _, err := st.Get(context.Background(), e.ID()); err == nil {
				t.Error("a job was recorded for it")
			}
		})
	}
}

func TestDeadLetter(t *testing.T) {
	d, st := setup(t)
	ctx := context.Background()
	e := requested(t, `{"function":"fail","args":{"message":"no"}}`)
	for range 3 {
		d.Receive(ctx, e)
	}
	e.SetExtension("knativeerrorcode", "500")
	e.SetExtension("knativeerrordata", base64.StdEncoding.EncodeToString([]byte("attempt 3 failed: no")))
	for range 2 { // the dead-letter delivery may be repeated too
		if got := status(t, d.DeadLetter(ctx, e)); got != http.StatusOK {
			t.Fatalf("dead letter answered %d", got)
		}
	}
	j, err := st.Get(ctx, e.ID())
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != job.Failed || j.Error != "dead-lettered after HTTP 500: attempt 3 failed: no" {
		t.Errorf("job %s with error %q", j.Status, j.Error)
	}
	stats, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(job.Stats{Failed: 1, Retries: 2}, stats); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	// One failed job whatever the number of dead letters, three attempts.
	checkCounts(t, d, "fail", counts{Failed: 1, AttemptsFailed: 3, Durations: 3, Waits: 1})
	// A fourth delivery, as an event sent again would make, finds no
	// attempt left and fails nothing more.
	if got := status(t, d.Receive(ctx, e)); got != http.StatusOK {
		t.Errorf("a delivery after the dead letter answered %d, want 200", got)
	}
	checkCounts(t, d, "fail", counts{Failed: 1, AttemptsFailed: 3, Durations: 3, Waits: 1})

	// A tick for a function this dispatcher lacks was refused with 400 and
	// never recorded; its dead letter still counts one failed job.
	unknown := requested(t, `{"function":"nope"}`)
	unknown.SetExtension("knativeerrorcode", "400")
	if got := status(t, d.DeadLetter(ctx, unknown)); got != http.StatusOK {
		t.Fatalf("dead letter answered %d", got)
	}
	if j, err := st.Get(ctx, unknown.ID()); err != nil || j.Status != job.Failed {
		t.Errorf("unknown function's job = %v, %v; want failed", j.Status, err)
	}
	// Its function is no label of its own: any event could name one.
	checkCounts(t, d, "undeclared", counts{Failed: 1})
}

// TestExhausted sends a job's event again after its every attempt failed
// and before the Broker's dead letter: the delivery fails the job, and
// counts it once, however often the event comes.
func TestExhausted(t *testing.T) {
	d, st := setup(t)
	d.SetMaxAttempts(2)
	ctx := context.Background()
	e := requested(t, `{"function":"fail"}`)
	for range 2 {
		if got := status(t, d.Receive(ctx, e)); got != http.StatusInternalServerError {
			t.Fatalf("a failing attempt answered %d, want 500", got)
		}
	}
	for range 2 {
		if got := status(t, d.Receive(ctx, e)); got != http.StatusOK {
			t.Fatalf("a delivery with no attempt left answered %d, want 200", got)
		}
	}
	if j, err := st.Get(ctx, e.ID()); err != nil || j.Status != job.Failed || len(j.Attempts) != 2 {
		t.Fatalf("job = %+v, %v; want failed after 2 attempts", j, err)
	}
	checkCounts(t, d, "fail", counts{Failed: 1, AttemptsFailed: 2, Durations: 2, Waits: 1})
}

func TestDeadLetterReason(t *testing.T) {
	full := base64.StdEncoding.EncodeToString([]byte("attempt 3 failed: disk full"))
	tests := []struct {
		name string
		ext  map[string]string
		want string
	}{
		{"no extensions", nil, "dead-lettered"},
		{"code only", map[string]string{"knativeerrorcode": "400"}, "dead-lettered after HTTP 400"},
		{"code and data", map[string]string{"knativeerrorcode": "500", "knativeerrordata": full}, "dead-lettered after HTTP 500: attempt 3 failed: disk full"},
		{"data cut mid-quantum", map[string]string{"knativeerrorcode": "500", "knativeerrordata": full[:len(full)-3]}, "dead-lettered after HTTP 500: attempt 3 failed: disk f"},
		{"data not base64", map[string]string{"knativeerrorcode": "500", "knativeerrordata": "!!!!"}, "dead-lettered after HTTP 500"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := cloudevents.NewEvent()
			for k, v := range tc.ext {
				e.SetExtension(k, v)
			}
			if got := deadLetterReason(e); got != tc.want {
				t.Errorf("deadLetterReason = %q, want %q", got, tc.want)
			}
		})
	}
}

// tick returns a tick of schedule as its PingSource sends it, for
// function.
func tick(t *testing.T, schedule, function string, paused bool) cloudevents.Event {
	t.Helper()
	e := cloudevents.NewEvent()
	e.SetID(uuid.NewString())
	e.SetType(event.TypePing)
	e.SetSource("/apis/v1/namespaces/kjobs/pingsources/kjobs-schedule-" + schedule)
	e.SetExtension(event.ExtOrigin, event.OriginSchedule)
	if paused {
		e.SetExtension(event.ExtPaused, "true")
	}
	if err := e.SetData(cloudevents.ApplicationJSON, []byte(`{"function":"`+function+`","schedule":"`+schedule+`"}`)); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestPausedTick delivers ticks of a schedule while it is paused and
// running: a paused tick is answered 2xx, creates no job and counts once,
// however often it is delivered.
func TestPausedTick(t *testing.T) {
	for _, tc := range []struct {
		name        string
		paused      bool
		wantJob     bool
		wantSkipped int64
	}{
		{"paused", true, false, 1},
		{"running", false, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, st := setup(t)
			ctx := context.Background()
			e := tick(t, "s1", "echo", tc.paused)
			for range 2 {
				if got := status(t, d.Receive(ctx, e)); got != http.StatusOK {
					t.Errorf("Receive = %d, want 200", got)
				}
			}
			if _, err := st.Get(ctx, e.ID()); (err == nil) != tc.wantJob {
				t.Errorf("Get of the tick's job = %v; want a job: %v", err, tc.wantJob)
			}
			if got, err := st.TicksSkipped(ctx, "s1"); err != nil || got[0] != tc.wantSkipped {
				t.Errorf("Skipped = %v, %v; want [%d]", got, err, tc.wantSkipped)
			}
		})
	}
}

// TestPausedTickDeadLetter dead-letters a paused schedule's tick for a
// function the dispatcher lacks, which Receive refused with 400: the dead
// letter records no failed job, and counts the tick skipped once.
func TestPausedTickDeadLetter(t *testing.T) {
	d, st := setup(t)
	ctx := context.Background()
	e := tick(t, "s1", "nope", true)
	if got := status(t, d.Receive(ctx, e)); got != http.StatusBadRequest {
		t.Errorf("Receive = %d, want 400", got)
	}
	e.SetExtension("knativeerrorcode", "400")
	for range 2 {
		if got := status(t, d.DeadLetter(ctx, e)); got != http.StatusOK {
			t.Errorf("DeadLetter = %d, want 200", got)
		}
	}
	if j, err := st.Get(ctx, e.ID()); err == nil {
		t.Errorf("the dead-lettered tick of a paused schedule recorded job %+v", j)
	}
	if got, err := st.TicksSkipped(ctx, "s1"); err != nil || got[0] != 1 {
		t.Errorf("Skipped = %v, %v; want [1]", got, err)
	}
}
