package local_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/kjobs/kjobs/internal/event"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/schedule"
	"github.com/kjobs/kjobs/internal/schedule/local"
)

// recorder is a Sender that keeps what it is sent.
type recorder struct {
	mu     sync.Mutex
	events []cloudevents.Event
	// sent receives each event after it is kept.
	sent chan cloudevents.Event
}

func newRecorder() *recorder { return &recorder{sent: make(chan cloudevents.Event, 100)} }

func (r *recorder) Send(_ context.Context, e cloudevents.Event) error {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	r.sent <- e
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// setup returns a running Store sending to a recorder; Run ends, and is
// checked to have returned nil, when the test does.
func setup(t *testing.T, sender event.Sender) *local.Store {
	t.Helper()
	s := local.New(sender)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

// wait returns the next event sent, failing the test after timeout.
func wait(t *testing.T, r *recorder, timeout time.Duration) cloudevents.Event {
	t.Helper()
	select {
	case e := <-r.sent:
		return e
	case <-time.After(timeout):
		t.Fatalf("no tick within %v", timeout)
		return cloudevents.Event{}
	}
}

func newID(t *testing.T) string {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// tick is what a test checks of a tick: everything but its ID and time.
type tick struct {
	SpecVersion, Type, Source, DataContentType string
	Extensions                                 map[string]any
	Data                                       map[string]any
}

func TestTicks(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	s := setup(t, rec)
	id := newID(t)
	if _, err := s.Create(context.Background(), schedule.Schedule{
		ID: id, Name: "every second", Cron: "*/1 * * * * *", Timezone: "Europe/Paris",
		Function: "sample", Args: job.Args{"greeting": "hello"},
	}); err != nil {
		t.Fatalf("Create: %v", err)
	}

	want := tick{
		SpecVersion:     "1.0",
		Type:            "dev.knative.sources.ping",
		Source:          "/apis/v1/namespaces/local/pingsources/kjobs-schedule-" + id,
		DataContentType: "application/json",
		Extensions:      map[string]any{"kjobsorigin": "schedule"},
		Data:            map[string]any{"function": "sample", "args": map[string]any{"greeting": "hello"}, "schedule": id},
	}
	ids := map[string]bool{}
	for range 2 {
		e := wait(t, rec, 3*time.Second)
		if err := e.Validate(); err != nil {
			t.Errorf("tick is not a valid CloudEvent: %v", err)
		}
		got := tick{
			SpecVersion: e.SpecVersion(), Type: e.Type(), Source: e.Source(),
			DataContentType: e.DataContentType(), Extensions: e.Extensions(),
		}
		if err := json.Unmarshal(e.Data(), &got.Data); err != nil {
			t.Errorf("tick data %q: %v", e.Data(), err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("tick (-want +got):\n%s", diff)
		}
		if u, err := uuid.Parse(e.ID()); err != nil || u.Version() != 7 {
			t.Errorf("tick ID %q is not a UUIDv7 (%v)", e.ID(), err)
		}
		if ids[e.ID()] {
			t.Errorf("tick ID %s sent twice", e.ID())
		}
		ids[e.ID()] = true
		if age := time.Since(e.Time()); age < 0 || age > 3*time.Second {
			t.Errorf("tick time %v is not the time of sending", e.Time())
		}
		// The dispatcher reads ticks with event.Request.
		req, err := event.Request(e)
		if err != nil {
			t.Fatalf("event.Request of a tick: %v", err)
		}
		if diff := cmp.Diff(job.Request{Function: "sample", Args: job.Args{"greeting": "hello"}, Schedule: id}, req); diff != "" {
			t.Errorf("event.Request of a tick (-want +got):\n%s", diff)
		}
	}
}

func TestCreatedBeforeRun(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	s := local.New(rec)
	if _, err := s.Create(context.Background(), schedule.Schedule{ID: newID(t), Cron: "* * * * * *", Function: "sample"}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	time.Sleep(1100 * time.Millisecond)
	if n := rec.count(); n != 0 {
		t.Fatalf("%d ticks before Run, want none", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	wait(t, rec, 3*time.Second)

	if err := s.Run(ctx); err == nil {
		t.Errorf("a second Run while the first runs succeeded, want an error")
	}
	cancel()
	if err := <-ran; err != nil {
		t.Errorf("Run: %v", err)
	}
	n := rec.count()
	time.Sleep(1100 * time.Millisecond)
	if got := rec.count(); got != n {
		t.Errorf("%d ticks after Run returned, want none", got-n)
	}
}

func TestDeleteStopsTicks(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	s := setup(t, rec)
	ctx := context.Background()
	id := newID(t)
	if _, err := s.Create(ctx, schedule.Schedule{ID: id, Cron: "* * * * * *", Function: "sample"}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	wait(t, rec, 3*time.Second)
	if err := s.Delete(ctx, id); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	n := rec.count()
	time.Sleep(2100 * time.Millisecond)
	if got := rec.count(); got != n {
		t.Errorf("%d ticks after Delete returned, want none", got-n)
	}
	if _, err := s.Get(ctx, id); !errors.Is(err, schedule.ErrNotFound) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
}

// blocker is a Sender that blocks until its context ends, like a Sender
// whose receiver hangs.
type blocker struct {
	sending  atomic.Int32
	started  chan struct{}
	once     sync.Once
	finished atomic.Int32
}

func (b *blocker) Send(ctx context.Context, _ cloudevents.Event) error {
	b.sending.Add(1)
	defer b.sending.Add(-1)
	b.once.Do(func() { close(b.started) })
	<-ctx.Done()
	b.finished.Add(1)
	return ctx.Err()
}

func TestDeleteWaitsForSendInFlight(t *testing.T) {
	t.Parallel()
	b := &blocker{started: make(chan struct{})}
	s := setup(t, b)
	ctx := context.Background()
	id := newID(t)
	if _, err := s.Create(ctx, schedule.Schedule{ID: id, Cron: "* * * * * *", Function: "sample"}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	select {
	case <-b.started:
	case <-time.After(3 * time.Second):
		t.Fatal("no tick within 3s")
	}
	if err := s.Delete(ctx, id); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if n := b.sending.Load(); n != 0 {
		t.Errorf("%d sends still in flight after Delete returned, want none", n)
	}
	if b.finished.Load() == 0 {
		t.Errorf("the send in flight was not cancelled")
	}
}

func TestCreateGetList(t *testing.T) {
	t.Parallel()
	s := local.New(newRecorder())
	ctx := context.Background()
	args := job.Args{"n": "1"}
	in := []schedule.Schedule{
		{ID: newID(t), Name: "nightly", Cron: "0 2 * * *", Timezone: "Asia/Tokyo", Function: "report", Args: args},
		{ID: newID(t), Name: "hourly", Cron: "@hourly", Function: "sample", NextRuns: []time.Time{time.Now()}},
	}
	before := time.Now().Truncate(time.Second)
	var want []schedule.Schedule
	for _, sc := range in {
		got, err := s.Create(ctx, sc)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if got.CreatedAt.Before(before) || got.CreatedAt.After(time.Now()) {
			t.Errorf("CreatedAt = %v, want the time of Create", got.CreatedAt)
		}
		sc.CreatedAt = got.CreatedAt
		// NextRuns changes with time: the caller computes it.
		sc.NextRuns = nil
		if diff := cmp.Diff(sc, got); diff != "" {
			t.Errorf("Create (-want +got):\n%s", diff)
		}
		sc.Args = maps.Clone(sc.Args)
		want = append(want, sc)
	}
	// The store keeps its own copy of the arguments.
	args["n"] = "2"

	for _, w := range want {
		got, err := s.Get(ctx, w.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("Get (-want +got):\n%s", diff)
		}
	}
	// Nor does a caller of Get share it.
	got0, err := s.Get(ctx, want[0].ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	got0.Args["n"] = "3"
	got, err := s.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	s := local.New(newRecorder())
	ctx := context.Background()
	id := newID(t)
	if _, err := s.Create(ctx, schedule.Schedule{ID: id, Cron: "@daily", Function: "sample"}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	unknown := newID(t)
	tests := []struct {
		name      string
		call      func() error
		want      error
		wantField string
	}{
		{"get unknown", func() error { _, err := s.Get(ctx, unknown); return err }, schedule.ErrNotFound, ""},
		{"delete unknown", func() error { return s.Delete(ctx, unknown) }, schedule.ErrNotFound, ""},
		{"invalid cron", func() error {
			_, err := s.Create(ctx, schedule.Schedule{ID: newID(t), Cron: "@every 1m", Function: "sample"})
			return err
		}, nil, schedule.FieldCron},
		{"invalid timezone", func() error {
			_, err := s.Create(ctx, schedule.Schedule{ID: newID(t), Cron: "@daily", Timezone: "Mars/Olympus_Mons", Function: "sample"})
			return err
		}, nil, schedule.FieldTimezone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
			var se *schedule.Error
			if tc.wantField != "" && (!errors.As(err, &se) || se.Field != tc.wantField) {
				t.Errorf("got %v, want a *schedule.Error in field %s", err, tc.wantField)
			}
		})
	}
	for name, sc := range map[string]schedule.Schedule{
		"duplicate ID": {ID: id, Cron: "@daily", Function: "sample"},
		"no ID":        {Cron: "@daily", Function: "sample"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Create(ctx, sc); err == nil {
				t.Errorf("Create succeeded, want an error")
			}
		})
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != 1 {
		t.Errorf("List has %d schedules after failed Creates, want 1", len(list))
	}
}

// TestConcurrent runs every method from many goroutines at once while the
// schedules fire; run it with -race.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	// Nobody reads rec.sent here.
	rec.sent = make(chan cloudevents.Event, 10000)
	s := setup(t, rec)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 20 {
				id := newID(t)
				sc := schedule.Schedule{ID: id, Cron: "* * * * * *", Function: "sample", Args: job.Args{"g": fmt.Sprint(g), "i": fmt.Sprint(i)}}
				if _, err := s.Create(ctx, sc); err != nil {
					t.Errorf("Create: %v", err)
					return
				}
				if _, err := s.Get(ctx, id); err != nil {
					t.Errorf("Get: %v", err)
				}
				if _, err := s.List(ctx); err != nil {
					t.Errorf("List: %v", err)
				}
				if i%2 == 0 {
					time.Sleep(10 * time.Millisecond)
					if err := s.Delete(ctx, id); err != nil {
						t.Errorf("Delete: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
	list, err := s.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != 16*10 {
		t.Errorf("List has %d schedules, want %d", len(list), 16*10)
	}
	for _, sc := range list {
		if err := s.Delete(ctx, sc.ID); err != nil {
			t.Errorf("Delete: %v", err)
		}
	}
}

// TestPause pauses and resumes a per-second schedule: its ticks go on and
// say whether it is paused, as a PingSource's do, and the state outlasts a
// restart of Run.
func TestPause(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	s := local.New(rec)
	ctx := context.Background()
	run := func() (stop func()) {
		runCtx, cancel := context.WithCancel(ctx)
		ran := make(chan error, 1)
		go func() { ran <- s.Run(runCtx) }()
		return func() {
			cancel()
			if err := <-ran; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	stop := run()
	defer func() { stop() }()
	id := newID(t)
	if _, err := s.Create(ctx, schedule.Schedule{ID: id, Cron: "* * * * * *", Function: "sample"}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	paused := func(e cloudevents.Event) bool {
		t.Helper()
		v, ok := e.Extensions()[event.ExtPaused]
		if ok && v != "true" {
			t.Errorf("tick has %s=%v, want true or nothing", event.ExtPaused, v)
		}
		return event.Paused(e)
	}
	check := func(step string, want bool) {
		t.Helper()
		got, err := s.Get(ctx, id)
		if err != nil || got.Paused != want {
			t.Errorf("%s: Get = paused %v, %v; want %v", step, got.Paused, err, want)
		}
		list, err := s.List(ctx)
		if err != nil || len(list) != 1 || list[0].Paused != want {
			t.Errorf("%s: List = %+v, %v; want paused %v", step, list, err, want)
		}
		// Ticks fire on the second, so the next one is sent after the
		// change; one sent before it has been received already.
		for range 2 {
			if e := wait(t, rec, 3*time.Second); paused(e) != want {
				t.Errorf("%s: tick %s says paused %v, want %v", step, e.ID(), !want, want)
			}
		}
	}

	if e := wait(t, rec, 3*time.Second); paused(e) {
		t.Errorf("a tick of a new schedule says paused")
	}
	for _, step := range []struct {
		name   string
		paused bool
	}{
		{"pause", true},
		{"pause again", true},
	} {
		got, err := s.SetPaused(ctx, id, step.paused)
		if err != nil || got.Paused != step.paused || got.ID != id {
			t.Fatalf("%s: SetPaused = %+v, %v", step.name, got, err)
		}
		check(step.name, step.paused)
	}

	stop()
	for len(rec.sent) > 0 {
		<-rec.sent
	}
	stop = run()
	check("paused, after Run restarted", true)

	if _, err := s.SetPaused(ctx, id, false); err != nil {
		t.Fatalf("SetPaused(false): %v", err)
	}
	check("resume", false)

	if _, err := s.SetPaused(ctx, newID(t), true); !errors.Is(err, schedule.ErrNotFound) {
		t.Errorf("SetPaused of an unknown schedule = %v, want ErrNotFound", err)
	}
}

// TestCreatePaused checks that a schedule created paused ticks paused.
func TestCreatePaused(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	s := setup(t, rec)
	created, err := s.Create(context.Background(), schedule.Schedule{ID: newID(t), Cron: "* * * * * *", Function: "sample", Paused: true, Skipped: 3})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if !created.Paused || created.Skipped != 0 {
		t.Errorf("Create = paused %v, skipped %d; want true, 0", created.Paused, created.Skipped)
	}
	if e := wait(t, rec, 3*time.Second); !event.Paused(e) {
		t.Errorf("the tick of a schedule created paused does not say so: %v", e.Extensions())
	}
}
