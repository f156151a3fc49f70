// Package local keeps schedules in memory and fires them on this machine,
// for `make run` without a cluster. Each tick sends the CloudEvent that the
// schedule's PingSource would send in a cluster, so that everything after
// the Sender runs the same code either way.
package local

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"

	"github.com/kjobs/kjobs/internal/event"
	"github.com/kjobs/kjobs/internal/schedule"
)

// Namespace stands in for the cluster namespace in the source of the
// ticks, which names the PingSource that sent them.
const Namespace = "local"

// Store is a schedule.Store in memory. Schedules fire while Run runs.
type Store struct {
	sender event.Sender
	log    *slog.Logger

	mu      sync.Mutex
	entries map[string]*entry
	// running is Run's context while Run runs, nil otherwise.
	running context.Context
}

var _ schedule.Store = (*Store)(nil)

// entry is one schedule and, while it fires, its goroutine.
type entry struct {
	sched schedule.Schedule
	spec  *schedule.Spec
	// tick is the event each tick sends, with a fresh ID each time. It is
	// replaced, never changed, when the schedule is paused or resumed, and
	// read under Store.mu.
	tick cloudevents.Event
	// stop and done are set once the schedule fires: stop ends its
	// goroutine, done is closed once it and every send it started have
	// returned.
	stop context.CancelFunc
	done chan struct{}
}

// Option configures a Store.
type Option func(*Store)

// WithLogger sets where failed sends are logged. Defaults to
// slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(s *Store) { s.log = l }
}

// New returns an empty Store that hands ticks to sender.
func New(sender event.Sender, opts ...Option) *Store {
	s := &Store{sender: sender, log: slog.Default(), entries: make(map[string]*entry)}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Run fires the schedules, those created before and while it runs, until
// ctx is done. It returns nil once every tick in flight has returned, or an
// error at once if Run is already running.
func (s *Store) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running != nil {
		s.mu.Unlock()
		return errors.New("local.Run: already running")
	}
	s.running = ctx
	for _, e := range s.entries {
		s.start(e)
	}
	s.mu.Unlock()

	<-ctx.Done()

	s.mu.Lock()
	var done []<-chan struct{}
	for _, e := range s.entries {
		done = append(done, e.halt())
	}
	s.mu.Unlock()
	for _, d := range done {
		<-d
	}
	// Only now may Run run again: a schedule created meanwhile started
	// under the ended ctx and stopped at once.
	s.mu.Lock()
	s.running = nil
	s.mu.Unlock()
	return nil
}

// Create keeps the schedule and, while Run runs, starts firing it. It
// parses the cron expression and timezone itself, so an invalid one is a
// *schedule.Error here too.
func (s *Store) Create(_ context.Context, sc schedule.Schedule) (schedule.Schedule, error) {
	if sc.ID == "" {
		return schedule.Schedule{}, errors.New("local.Create: the schedule has no ID")
	}
	spec, err := schedule.Parse(sc.Cron, sc.Timezone)
	if err != nil {
		return schedule.Schedule{}, err
	}
	// The store keeps its own copy: the caller's map stays the caller's.
	sc.Args = maps.Clone(sc.Args)
	sc.NextRuns, sc.Skipped = nil, 0
	// To the second, as the cluster keeps it.
	sc.CreatedAt = time.Now().UTC().Truncate(time.Second)
	tick, err := newTick(sc)
	if err != nil {
		return schedule.Schedule{}, fmt.Errorf("local.Create: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[sc.ID]; ok {
		return schedule.Schedule{}, fmt.Errorf("local.Create: schedule %s already exists", sc.ID)
	}
	e := &entry{sched: sc, spec: spec, tick: tick}
	s.entries[sc.ID] = e
	if s.running != nil {
		s.start(e)
	}
	return clone(sc), nil
}

// List returns every schedule, oldest first.
func (s *Store) List(context.Context) ([]schedule.Schedule, error) {
	s.mu.Lock()
	list := make([]schedule.Schedule, 0, len(s.entries))
	for _, e := range s.entries {
		list = append(list, clone(e.sched))
	}
	s.mu.Unlock()
	slices.SortFunc(list, func(a, b schedule.Schedule) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return list, nil
}

// Get returns the schedule id, or schedule.ErrNotFound.
func (s *Store) Get(_ context.Context, id string) (schedule.Schedule, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[id]
	if !ok {
		return schedule.Schedule{}, fmt.Errorf("local.Get %s: %w", id, schedule.ErrNotFound)
	}
	return clone(e.sched), nil
}

// Delete removes the schedule id, or returns schedule.ErrNotFound. Once it
// returns, the schedule sends nothing more: a tick already sending is
// cancelled and waited for.
func (s *Store) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	e, ok := s.entries[id]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("local.Delete %s: %w", id, schedule.ErrNotFound)
	}
	delete(s.entries, id)
	done := e.halt()
	s.mu.Unlock()
	<-done
	return nil
}

// SetPaused pauses or resumes the schedule id, or returns
// schedule.ErrNotFound. A paused schedule ticks on, as its PingSource does
// in a cluster, and its ticks carry event.ExtPaused. The state is kept with
// the schedule, in memory: it outlasts a restart of Run, not of the process.
func (s *Store) SetPaused(_ context.Context, id string, paused bool) (schedule.Schedule, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[id]
	if !ok {
		return schedule.Schedule{}, fmt.Errorf("local.SetPaused %s: %w", id, schedule.ErrNotFound)
	}
	if e.sched.Paused != paused {
		e.sched.Paused = paused
		// A send in flight may be reading the old tick: make a new one.
		tick := e.tick.Clone()
		setPaused(&tick, paused)
		e.tick = tick
	}
	return clone(e.sched), nil
}

// setPaused sets or clears event.ExtPaused on tick as a PingSource's
// ceOverrides would.
func setPaused(tick *cloudevents.Event, paused bool) {
	if paused {
		tick.SetExtension(event.ExtPaused, "true")
		return
	}
	// Extensions() is a copy; SetExtension of nil deletes.
	tick.SetExtension(event.ExtPaused, nil)
}

// start starts firing e; s.mu is held and s.running is set.
func (s *Store) start(e *entry) {
	ctx, stop := context.WithCancel(s.running)
	e.stop, e.done = stop, make(chan struct{})
	go s.fire(ctx, e, e.done)
}

// halt stops e firing and returns a channel closed once it has stopped.
// s.mu is held.
func (e *entry) halt() <-chan struct{} {
	if e.stop == nil {
		return closed
	}
	e.stop()
	return e.done
}

// closed is the done channel of a schedule that never fired.
var closed = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// fire sends e's tick at every run of its spec until ctx is done, then
// waits for the sends in flight and closes done. Like PingSource's adapter
// (a robfig cron, which runs each job on its own goroutine), a slow send
// does not delay the next tick.
func (s *Store) fire(ctx context.Context, e *entry, done chan struct{}) {
	var sends sync.WaitGroup
	defer func() {
		sends.Wait()
		close(done)
	}()
	for {
		next := e.spec.Next(time.Now())
		if next.IsZero() {
			// No run within five years (say, February 30th): nothing to do
			// but wait to be stopped.
			<-ctx.Done()
			return
		}
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		// select picks at random when the timer and ctx are both ready.
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		tick := e.tick
		s.mu.Unlock()
		sends.Go(func() { s.send(ctx, tick) })
	}
}

// send sends one tick. PingSource's adapter logs a tick it could not hand
// over and drops it; so does this. Delivering an accepted tick, with
// retries, is the Sender's job.
func (s *Store) send(ctx context.Context, tick cloudevents.Event) {
	e := tick.Clone()
	// A tick's ID becomes the job's ID: UUIDv7 keeps the local job IDs in
	// time order, as the API's are. NewV7 only fails if crypto/rand does,
	// and crypto/rand.Read never returns an error.
	e.SetID(uuid.Must(uuid.NewV7()).String())
	// PingSource's CloudEvents client stamps the time of sending.
	e.SetTime(time.Now())
	if err := s.sender.Send(ctx, e); err != nil {
		// A send cut short by Delete or by the end of Run is expected.
		level := slog.LevelError
		if ctx.Err() != nil {
			level = slog.LevelInfo
		}
		s.log.Log(ctx, level, "schedule tick not sent", "source", e.Source(), "id", e.ID(), "error", err)
	}
}

// newTick builds the event a PingSource with kjobs' spec sends for sc,
// without its ID and time, which every tick sets anew.
func newTick(sc schedule.Schedule) (cloudevents.Event, error) {
	e := cloudevents.NewEvent()
	e.SetType(event.TypePing)
	// The format of sourcesv1.PingSourceSource.
	e.SetSource(fmt.Sprintf("/apis/v1/namespaces/%s/pingsources/%s", Namespace, schedule.ResourceName(sc.ID)))
	e.SetExtension(event.ExtOrigin, event.OriginSchedule)
	setPaused(&e, sc.Paused)
	data, err := json.Marshal(sc.Request())
	if err != nil {
		return e, fmt.Errorf("tick data of schedule %s: %w", sc.ID, err)
	}
	// PingSource's adapter sets spec.data as bytes, as they are.
	if err := e.SetData(cloudevents.ApplicationJSON, data); err != nil {
		return e, fmt.Errorf("tick data of schedule %s: %w", sc.ID, err)
	}
	return e, nil
}

// clone copies sc so that callers cannot change the stored Args.
func clone(sc schedule.Schedule) schedule.Schedule {
	sc.Args = maps.Clone(sc.Args)
	return sc
}
