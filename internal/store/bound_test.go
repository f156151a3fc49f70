package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/store"
)

func boundRequest(binding, source, id string) job.Request {
	return job.Request{Function: "echo", Binding: binding, Event: &job.EventRef{Source: source, ID: id, Type: "com.example.object.created"}}
}

// TestCreateBound checks that an event's job is recorded once however often
// the event comes, with the event kept for its function, and that an ID that
// another event holds is refused rather than taken for it.
func TestCreateBound(t *testing.T) {
	s, _, _ := setup(t)
	ctx := context.Background()
	ce := []byte(`{"specversion":"1.0","id":"17","source":"/photos","type":"com.example.object.created","data":{"key":"cat.png"}}`)
	req := boundRequest("uploads", "/photos", "17")

	j, created, err := s.CreateBound(ctx, "ev1", req, ce)
	if err != nil || !created {
		t.Fatalf("first CreateBound: created %v, %v", created, err)
	}
	for range 5 {
		again, created, err := s.CreateBound(ctx, "ev1", req, ce)
		if err != nil || created {
			t.Fatalf("CreateBound of a duplicate: created %v, %v", created, err)
		}
		if again.Binding != "uploads" || again.Event == nil || *again.Event != *req.Event {
			t.Errorf("duplicate returned binding %q, event %+v; want the first job's", again.Binding, again.Event)
		}
	}
	if st, _ := s.Stats(ctx); st.Queued != 1 {
		t.Errorf("queued %d after six deliveries of one event, want 1", st.Queued)
	}
	got, err := s.Get(ctx, "ev1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(j, got); diff != "" {
		t.Errorf("Get differs from what CreateBound returned (-created +got):\n%s", diff)
	}
	if raw, err := s.Event(ctx, "ev1"); err != nil || string(raw) != string(ce) {
		t.Errorf("Event = %s, %v; want the event as recorded", raw, err)
	}

	for _, other := range []job.Request{
		boundRequest("thumbnails", "/photos", "17"),
		boundRequest("uploads", "/other", "17"),
		boundRequest("uploads", "/photos", "18"),
	} {
		if _, _, err := s.CreateBound(ctx, "ev1", other, ce); !errors.Is(err, store.ErrCollision) {
			t.Errorf("CreateBound of %+v under a taken ID: %v, want ErrCollision", other.Event, err)
		}
	}
	if _, _, err := s.CreateBound(ctx, "ev2", job.Request{Function: "echo", Binding: "uploads"}, ce); err == nil {
		t.Error("CreateBound without the event's source and id succeeded")
	}
	if raw, err := s.Event(ctx, "nope"); err != nil || raw != nil {
		t.Errorf("Event of an unknown job = %q, %v; want nil, nil", raw, err)
	}
	// The sweep sends a bound job's event again as a job request, which
	// finds the job as it is.
	if again, created, err := s.Create(ctx, "ev1", got.Request(), ""); err != nil || created || again.Binding != "uploads" {
		t.Errorf("Create of the job's own request: %+v, created %v, %v", again, created, err)
	}
}

// TestListBinding checks GET /jobs?binding=: the binding's jobs only, newest
// first, with a status filtering them.
func TestListBinding(t *testing.T) {
	s, _, _ := setup(t)
	ctx := context.Background()
	for i := range 6 {
		b := "uploads"
		if i%2 == 1 {
			b = "pushes"
		}
		id := fmt.Sprintf("ev%d", i)
		if _, _, err := s.CreateBound(ctx, id, boundRequest(b, "/s", id), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		if i == 4 {
			if _, err := s.Start(ctx, id, attempt(1, job.OutcomeRunning, "")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, _, err := s.Create(ctx, "plain", job.Request{Function: "echo"}, ""); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		opts store.ListOptions
		want []string
	}{
		{store.ListOptions{Binding: "uploads"}, []string{"ev4", "ev2", "ev0"}},
		{store.ListOptions{Binding: "pushes", Limit: 2}, []string{"ev5", "ev3"}},
		{store.ListOptions{Binding: "uploads", Status: job.Running}, []string{"ev4"}},
		{store.ListOptions{Binding: "none"}, nil},
	} {
		page, err := s.List(ctx, tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, j := range page.Jobs {
			got = append(got, j.ID)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("List(%+v) (-want +got):\n%s", tt.opts, diff)
		}
	}
}
