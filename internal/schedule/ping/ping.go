// Package ping keeps schedules as Knative PingSources (sources.knative.dev/v1)
// that send their ticks to the kjobs Broker. The cluster is the truth: a
// schedule is rebuilt from its PingSource on every List and Get, so kjobs
// keeps no copy that could drift from what actually fires.
//
// No Knative webhook is relied on: Create applies PingSource's own
// defaulting and validation in-process, as the webhook would, before
// anything reaches the API server.
package ping

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	validationpath "k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	"knative.dev/eventing/pkg/client/clientset/versioned"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"

	"github.com/kjobs/kjobs/internal/event"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/schedule"
)

// LabelSchedule labels each schedule's PingSource with the schedule ID;
// List selects by it.
const LabelSchedule = "kjobs.dev/schedule"

// DefaultBroker is the Broker that ticks go to when Config.Broker is empty.
const DefaultBroker = "kjobs"

// Annotations keep what the PingSource's spec has no field for, so that a
// schedule can be rebuilt from the cluster alone. The function is also in
// spec.data, which is what the ticks send and what Get reads; the
// annotation is for people reading kubectl's output.
const (
	annotationName      = "kjobs.dev/name"
	annotationFunction  = "kjobs.dev/function"
	annotationCreatedAt = "kjobs.dev/created-at"
)

// AnnotationPaused is "true" on the PingSource of a paused schedule, for
// people reading kubectl's output. What the schedule's state is, and what
// its ticks say, is the event.ExtPaused extension in spec.ceOverrides,
// which SetPaused sets together with it.
const AnnotationPaused = "kjobs.dev/paused"

// Config says where a Store keeps PingSources and where they send ticks.
type Config struct {
	// Namespace holds the PingSources and the Broker. Required; the API
	// takes it from KJOBS_NAMESPACE (the downward API).
	Namespace string
	// Broker is the name of the Broker in Namespace that receives the
	// ticks (KJOBS_BROKER). Defaults to DefaultBroker.
	Broker string
}

// Store is a schedule.Store of PingSources.
type Store struct {
	client versioned.Interface
	cfg    Config
}

var _ schedule.Store = (*Store)(nil)

// New returns a Store that keeps PingSources through client.
func New(client versioned.Interface, cfg Config) *Store {
	if cfg.Broker == "" {
		cfg.Broker = DefaultBroker
	}
	return &Store{client: client, cfg: cfg}
}

// Create creates the schedule's PingSource and returns the schedule as the
// cluster keeps it. A cron expression or timezone that PingSource rejects
// is a *schedule.Error, and nothing is created.
func (s *Store) Create(ctx context.Context, sc schedule.Schedule) (schedule.Schedule, error) {
	if sc.ID == "" {
		return schedule.Schedule{}, errors.New("ping.Create: the schedule has no ID")
	}
	// Knative's defaulting would turn an empty schedule into "* * * * *":
	// a forgotten field must not become a job every minute. The detail is
	// the parser's, as schedule.Validate reports it.
	if sc.Cron == "" {
		return schedule.Schedule{}, &schedule.Error{Field: schedule.FieldCron, Detail: "empty spec string"}
	}
	ps, err := s.pingSource(sc, time.Now())
	if err != nil {
		return schedule.Schedule{}, fmt.Errorf("ping.Create: %w", err)
	}
	// What the webhook would do, were one running.
	ps.SetDefaults(ctx)
	if fe := ps.Validate(apis.WithinParent(ctx, ps.ObjectMeta)).Filter(apis.ErrorLevel); fe != nil {
		return schedule.Schedule{}, validationError(ps.Name, fe)
	}
	created, err := s.client.SourcesV1().PingSources(s.cfg.Namespace).Create(ctx, ps, metav1.CreateOptions{})
	if err != nil {
		return schedule.Schedule{}, fmt.Errorf("ping.Create %s: %w", ps.Name, err)
	}
	out, err := fromPingSource(created)
	if err != nil {
		return schedule.Schedule{}, fmt.Errorf("ping.Create: %w", err)
	}
	return out, nil
}

// List returns every schedule whose PingSource is in the namespace, oldest
// first. A PingSource being deleted is not listed: Knative's reconciler
// holds it with a finalizer for a moment after DELETE, but the schedule is
// gone for the user.
func (s *Store) List(ctx context.Context) ([]schedule.Schedule, error) {
	list, err := s.client.SourcesV1().PingSources(s.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelSchedule})
	if err != nil {
		return nil, fmt.Errorf("ping.List: %w", err)
	}
	out := make([]schedule.Schedule, 0, len(list.Items))
	for i := range list.Items {
		if list.Items[i].DeletionTimestamp != nil {
			continue
		}
		sc, err := fromPingSource(&list.Items[i])
		if err != nil {
			return nil, fmt.Errorf("ping.List: %w", err)
		}
		out = append(out, sc)
	}
	slices.SortFunc(out, func(a, b schedule.Schedule) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Get returns the schedule id, or schedule.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (schedule.Schedule, error) {
	name, ok := resourceName(id)
	if !ok {
		return schedule.Schedule{}, fmt.Errorf("ping.Get %q: %w", id, schedule.ErrNotFound)
	}
	ps, err := s.client.SourcesV1().PingSources(s.cfg.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return schedule.Schedule{}, fmt.Errorf("ping.Get %s: %w", id, schedule.ErrNotFound)
	}
	if err != nil {
		return schedule.Schedule{}, fmt.Errorf("ping.Get %s: %w", id, err)
	}
	if ps.DeletionTimestamp != nil {
		return schedule.Schedule{}, fmt.Errorf("ping.Get %s: being deleted: %w", id, schedule.ErrNotFound)
	}
	sc, err := fromPingSource(ps)
	if err != nil {
		return schedule.Schedule{}, fmt.Errorf("ping.Get: %w", err)
	}
	return sc, nil
}

// Delete deletes the schedule's PingSource, or returns
// schedule.ErrNotFound, also for one already being deleted. Knative's
// adapter stops ticking only once the object is gone (knative.dev/eventing
// v0.50.0 pkg/adapter/mtping/pingsource.go), which a finalizer may delay:
// the API marks the schedule deleted in the store so that the dispatcher
// drops the ticks meanwhile.
func (s *Store) Delete(ctx context.Context, id string) error {
	if _, err := s.Get(ctx, id); err != nil {
		return fmt.Errorf("ping.Delete: %w", err)
	}
	name, _ := resourceName(id)
	err := s.client.SourcesV1().PingSources(s.cfg.Namespace).Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("ping.Delete %s: %w", id, schedule.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("ping.Delete %s: %w", id, err)
	}
	return nil
}

// SetPaused pauses or resumes the schedule id, or returns
// schedule.ErrNotFound, also for one being deleted. It updates the
// PingSource's ceOverrides, which Knative's adapter copies into every tick
// it sends (knative.dev/eventing v0.50.0 pkg/adapter/mtping: runner.go
// makeEvent), and the paused annotation.
//
// The adapter picks the change up from its informer, not at once: the
// update event enqueues the PingSource (controller.go NewController), the
// reconciler hands it on only while it is Ready (pingsource.go
// Reconciler.ReconcileKind), and the adapter replaces its cron entry with
// one built from the new spec (adapter.go mtpingAdapter.Update, runner.go
// cronJobsRunner.AddSchedule). That is a watch event and a work queue away:
// before the next tick of a per-second schedule in test/knative's
// TestPauseThroughPingSource, but longer while the adapter's watch
// reconnects or the PingSource is not Ready. Ticks sent meanwhile carry the
// old state, which is why the API also marks the state in the store for the
// dispatcher.
func (s *Store) SetPaused(ctx context.Context, id string, paused bool) (schedule.Schedule, error) {
	name, ok := resourceName(id)
	if !ok {
		return schedule.Schedule{}, fmt.Errorf("ping.SetPaused %q: %w", id, schedule.ErrNotFound)
	}
	client := s.client.SourcesV1().PingSources(s.cfg.Namespace)
	var updated *sourcesv1.PingSource
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ps, err := client.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("%s: %w", id, schedule.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if ps.DeletionTimestamp != nil {
			return fmt.Errorf("%s: being deleted: %w", id, schedule.ErrNotFound)
		}
		if isPaused(ps) == paused && (ps.Annotations[AnnotationPaused] == "true") == paused {
			updated = ps
			return nil
		}
		next := ps.DeepCopy()
		setPaused(next, paused)
		// What the webhook would check of the update, were one running.
		vctx := apis.WithinUpdate(apis.WithinParent(ctx, next.ObjectMeta), ps)
		if fe := next.Validate(vctx).Filter(apis.ErrorLevel); fe != nil {
			return fmt.Errorf("Knative rejects PingSource %s: %w", name, fe)
		}
		updated, err = client.Update(ctx, next, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return schedule.Schedule{}, fmt.Errorf("ping.SetPaused: %w", err)
	}
	sc, err := fromPingSource(updated)
	if err != nil {
		return schedule.Schedule{}, fmt.Errorf("ping.SetPaused: %w", err)
	}
	return sc, nil
}

// isPaused reports whether ps's ticks say that their schedule is paused.
func isPaused(ps *sourcesv1.PingSource) bool {
	o := ps.Spec.CloudEventOverrides
	return o != nil && o.Extensions[event.ExtPaused] == "true"
}

// setPaused sets or clears the extension and the annotation of a paused
// schedule on ps.
func setPaused(ps *sourcesv1.PingSource, paused bool) {
	if !paused {
		if o := ps.Spec.CloudEventOverrides; o != nil {
			delete(o.Extensions, event.ExtPaused)
		}
		delete(ps.Annotations, AnnotationPaused)
		return
	}
	if ps.Spec.CloudEventOverrides == nil {
		ps.Spec.CloudEventOverrides = &duckv1.CloudEventOverrides{}
	}
	if ps.Spec.CloudEventOverrides.Extensions == nil {
		ps.Spec.CloudEventOverrides.Extensions = map[string]string{}
	}
	ps.Spec.CloudEventOverrides.Extensions[event.ExtPaused] = "true"
	if ps.Annotations == nil {
		ps.Annotations = map[string]string{}
	}
	ps.Annotations[AnnotationPaused] = "true"
}

// resourceName returns the PingSource name of schedule id, or false if no
// object can have that name: client-go refuses to put "/" or ".." in a
// request path, and such an id, from a URL, is simply not found.
func resourceName(id string) (string, bool) {
	name := schedule.ResourceName(id)
	return name, len(validationpath.IsValidPathSegmentName(name)) == 0
}

// pingSource builds the PingSource of sc, created at now.
func (s *Store) pingSource(sc schedule.Schedule, now time.Time) (*sourcesv1.PingSource, error) {
	data, err := json.Marshal(sc.Request())
	if err != nil {
		return nil, fmt.Errorf("data of schedule %s: %w", sc.ID, err)
	}
	ps := &sourcesv1.PingSource{
		TypeMeta: metav1.TypeMeta{APIVersion: sourcesv1.SchemeGroupVersion.String(), Kind: "PingSource"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      schedule.ResourceName(sc.ID),
			Namespace: s.cfg.Namespace,
			Labels: map[string]string{
				LabelSchedule:                  sc.ID,
				"app.kubernetes.io/managed-by": "kjobs",
			},
			Annotations: map[string]string{
				annotationName:      sc.Name,
				annotationFunction:  sc.Function,
				annotationCreatedAt: now.UTC().Format(time.RFC3339),
			},
		},
		Spec: sourcesv1.PingSourceSpec{
			SourceSpec: duckv1.SourceSpec{
				Sink: duckv1.Destination{Ref: &duckv1.KReference{
					APIVersion: "eventing.knative.dev/v1",
					Kind:       "Broker",
					Name:       s.cfg.Broker,
					Namespace:  s.cfg.Namespace,
				}},
				// The kjobs-schedule Trigger selects on this, so that other
				// PingSources sending to the Broker never become jobs.
				CloudEventOverrides: &duckv1.CloudEventOverrides{Extensions: map[string]string{
					event.ExtOrigin: event.OriginSchedule,
				}},
			},
			Schedule:    sc.Cron,
			Timezone:    sc.Timezone,
			ContentType: cloudevents.ApplicationJSON,
			Data:        string(data),
		},
	}
	setPaused(ps, sc.Paused)
	return ps, nil
}

// fromPingSource rebuilds a schedule from its PingSource.
func fromPingSource(ps *sourcesv1.PingSource) (schedule.Schedule, error) {
	var req job.Request
	if err := json.Unmarshal([]byte(ps.Spec.Data), &req); err != nil {
		return schedule.Schedule{}, fmt.Errorf("PingSource %s/%s: spec.data is not a job request: %w", ps.Namespace, ps.Name, err)
	}
	if req.Args == nil {
		// The data leaves out empty args; the API shows them as {}.
		req.Args = job.Args{}
	}
	createdAt, err := time.Parse(time.RFC3339, ps.Annotations[annotationCreatedAt])
	if err != nil {
		// A PingSource labelled by hand has no annotation: the API
		// server's record of its creation is as good.
		createdAt = ps.CreationTimestamp.UTC()
	}
	return schedule.Schedule{
		ID:        ps.Labels[LabelSchedule],
		Name:      ps.Annotations[annotationName],
		Cron:      ps.Spec.Schedule,
		Timezone:  ps.Spec.Timezone,
		Function:  req.Function,
		Args:      req.Args,
		CreatedAt: createdAt.UTC(),
		Paused:    isPaused(ps),
	}, nil
}

// validationError turns Knative's verdict on a PingSource into an error. A
// fault in the schedule or timezone is the caller's to fix, a
// *schedule.Error naming the schedule first, as schedule.Validate does; any
// other is in what kjobs built from its configuration.
func validationError(name string, fe *apis.FieldError) error {
	errs := fe.WrappedErrors()
	for _, f := range []struct{ path, field string }{
		{"spec.schedule", schedule.FieldCron},
		{"spec.timezone", schedule.FieldTimezone},
	} {
		for _, e := range errs {
			if slices.Contains(e.Paths, f.path) {
				return &schedule.Error{Field: f.field, Detail: strings.TrimPrefix(e.Message, "invalid value: ")}
			}
		}
	}
	return fmt.Errorf("ping.Create: Knative rejects PingSource %s: %w", name, fe)
}
