package local_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/kjobs/kjobs/internal/binding"
	"github.com/kjobs/kjobs/internal/binding/local"
)

// s3Event is shaped like the events of the AWS S3 source.
func s3Event(t testing.TB, typ, subject string, ext map[string]string) cloudevents.Event {
	t.Helper()
	e := cloudevents.NewEvent()
	e.SetID("3f1c/2026-12-01T10:00:00Z#17")
	e.SetSource("arn:aws:s3:::photos")
	e.SetType(typ)
	e.SetSubject(subject)
	for k, v := range ext {
		e.SetExtension(k, v)
	}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestMatch(t *testing.T) {
	t.Parallel()
	// Each binding as the API would receive it, so that Match sees what
	// Decode accepts.
	bodies := map[string]string{
		"exact-type":     `{"name":"exact-type","filter":{"type":"com.amazonaws.s3.object-created"},"function":"echo"}`,
		"exact-source":   `{"name":"exact-source","filter":{"type":"com.amazonaws.s3.object-created","source":"arn:aws:s3:::photos"},"function":"echo"}`,
		"extension":      `{"name":"extension","filter":{"region":"eu-west-1"},"function":"echo"}`,
		"extension-any":  `{"name":"extension-any","filter":{"region":""},"function":"echo"}`,
		"prefix":         `{"name":"prefix","filters":[{"prefix":{"type":"com.amazonaws.s3."}}],"function":"echo"}`,
		"suffix":         `{"name":"suffix","filters":[{"suffix":{"subject":".png"}}],"function":"echo"}`,
		"prefix-not-tmp": `{"name":"prefix-not-tmp","filters":[{"prefix":{"type":"com.amazonaws.s3."}},{"not":{"suffix":{"subject":".tmp"}}}],"function":"echo"}`,
		"any":            `{"name":"any","filters":[{"any":[{"exact":{"type":"com.github.push"}},{"exact":{"region":"us-east-1"}}]}],"function":"echo"}`,
		"cesql":          `{"name":"cesql","filters":[{"cesql":"region = 'eu-west-1' AND subject LIKE '%.png'"}],"function":"echo"}`,
	}
	s := local.New()
	ctx := context.Background()
	for _, body := range bodies {
		b, err := binding.Decode([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if _, err := s.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for name := range bodies {
			if err := s.Delete(ctx, name); err != nil {
				t.Error(err)
			}
		}
	})

	for _, tc := range []struct {
		name  string
		event cloudevents.Event
		want  []string
	}{
		{
			name:  "created png in eu-west-1",
			event: s3Event(t, "com.amazonaws.s3.object-created", "cat.png", map[string]string{"region": "eu-west-1"}),
			want:  []string{"cesql", "exact-source", "exact-type", "extension", "extension-any", "prefix", "prefix-not-tmp", "suffix"},
		},
		{
			name:  "created tmp without extension",
			event: s3Event(t, "com.amazonaws.s3.object-created", "cat.tmp", nil),
			want:  []string{"exact-source", "exact-type", "prefix"},
		},
		{
			name:  "removed png in us-east-1",
			event: s3Event(t, "com.amazonaws.s3.object-removed", "cat.png", map[string]string{"region": "us-east-1"}),
			want:  []string{"any", "extension-any", "prefix", "prefix-not-tmp", "suffix"},
		},
		{
			name:  "type is case-sensitive",
			event: s3Event(t, "COM.AMAZONAWS.S3.OBJECT-CREATED", "cat.gif", nil),
			want:  nil,
		},
		{
			name:  "empty extension is absent",
			event: s3Event(t, "dev.example.other", "x", map[string]string{"region": ""}),
			want:  nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, b := range s.Match(tc.event) {
				got = append(got, b.Name)
			}
			slices.Sort(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Match (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := local.New()
	b := binding.Binding{Name: "uploads", Filter: map[string]string{"type": "t"}, Function: "echo"}
	created, err := s.Create(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if created.CreatedAt.IsZero() || time.Since(created.CreatedAt) > time.Minute {
		t.Errorf("CreatedAt = %v", created.CreatedAt)
	}
	if _, err := s.Create(ctx, b); !errors.Is(err, binding.ErrExists) {
		t.Errorf("Create again: %v, want ErrExists", err)
	}
	got, err := s.Get(ctx, "uploads")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(created, got); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]binding.Binding{created}, list); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if err := s.Delete(ctx, "uploads"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "uploads"); !errors.Is(err, binding.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "uploads"); !errors.Is(err, binding.ErrNotFound) {
		t.Errorf("Delete again: %v, want ErrNotFound", err)
	}
	if got := s.Match(s3Event(t, "t", "x", nil)); len(got) != 0 {
		t.Errorf("Match after Delete = %v, want none", got)
	}
}
