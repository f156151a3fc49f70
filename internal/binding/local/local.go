// Package local keeps bindings in memory for `make run` and matches events
// against them as the Broker's filter would match their Triggers: with
// Knative's own filter code (knative.dev/eventing v0.50.0 pkg/eventfilter),
// combined as pkg/broker/filter/filter_handler.go combines it.
package local

import (
	"context"
	"fmt"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"go.uber.org/zap"
	"knative.dev/eventing/pkg/eventfilter"
	"knative.dev/eventing/pkg/eventfilter/attributes"
	"knative.dev/eventing/pkg/eventfilter/subscriptionsapi"

	"github.com/kjobs/kjobs/internal/binding"
)

// Store is a binding.Store in memory. The zero value is not usable; call
// New.
type Store struct {
	now func() time.Time

	mu       sync.RWMutex
	bindings map[string]entry
}

// entry is a binding with its filter, materialized once as the Broker's
// filter keeps one per Trigger in its FiltersMap.
type entry struct {
	binding.Binding
	filter eventfilter.Filter
}

var _ binding.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store {
	return &Store{now: time.Now, bindings: map[string]entry{}}
}

// Create keeps b, or returns binding.ErrExists.
func (s *Store) Create(_ context.Context, b binding.Binding) (binding.Binding, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.bindings[b.Name]; ok {
		return binding.Binding{}, fmt.Errorf("local.Create %s: %w", b.Name, binding.ErrExists)
	}
	// Seconds, as a Trigger's annotation keeps the time: both stores show
	// the same thing.
	b.CreatedAt = s.now().UTC().Truncate(time.Second)
	s.bindings[b.Name] = entry{Binding: b, filter: newFilter(b)}
	return b, nil
}

// Get returns binding name, or binding.ErrNotFound.
func (s *Store) Get(_ context.Context, name string) (binding.Binding, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.bindings[name]
	if !ok {
		return binding.Binding{}, fmt.Errorf("local.Get %s: %w", name, binding.ErrNotFound)
	}
	return e.Binding, nil
}

// List returns every binding, oldest first.
func (s *Store) List(context.Context) ([]binding.Binding, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]binding.Binding, 0, len(s.bindings))
	for _, e := range s.bindings {
		out = append(out, e.Binding)
	}
	binding.Sort(out)
	return out, nil
}

// Delete removes binding name, or returns binding.ErrNotFound.
func (s *Store) Delete(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.bindings[name]
	if !ok {
		return fmt.Errorf("local.Delete %s: %w", name, binding.ErrNotFound)
	}
	delete(s.bindings, name)
	// An all filter runs a goroutine until it is cleaned up.
	e.filter.Cleanup()
	return nil
}

// Match returns the bindings whose filters pass e, oldest first: the
// Triggers the Broker would deliver e to.
func (s *Store) Match(e cloudevents.Event) []binding.Binding {
	ctx := context.Background()
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []binding.Binding
	for _, b := range s.bindings {
		// The Broker's filter drops an event only on FailFilter; NoFilter
		// passes (filter_handler.go Handler.send).
		if b.filter.Filter(ctx, e) != eventfilter.FailFilter {
			out = append(out, b.Binding)
		}
	}
	binding.Sort(out)
	return out
}

// newFilter builds b's filter as filterEvent in Knative's
// pkg/broker/filter/filter_handler.go chooses it: filters when there are
// any, else the attribute filter, else none.
func newFilter(b binding.Binding) eventfilter.Filter {
	switch {
	case len(b.Filters) > 0:
		// Knative logs and skips a filter it cannot build; Decode refuses
		// such filters, so there is nothing to log.
		return subscriptionsapi.CreateSubscriptionsAPIFilters(zap.NewNop(), b.Filters)
	case b.Filter != nil:
		return attributes.NewAttributesFilter(b.Filter)
	default:
		return subscriptionsapi.NewNoFilter()
	}
}
