package binding_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"

	"github.com/kjobs/kjobs/internal/binding"
	"github.com/kjobs/kjobs/internal/job"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		body string
		want binding.Binding
	}{
		{
			name: "attribute filter",
			body: `{"name":"uploads","filter":{"type":"com.amazonaws.s3.object-created"},"function":"echo"}`,
			want: binding.Binding{Name: "uploads", Filter: map[string]string{"type": "com.amazonaws.s3.object-created"}, Function: "echo"},
		},
		{
			name: "extension present, any value",
			body: `{"name":"traced","filter":{"traceparent":""},"function":"echo"}`,
			want: binding.Binding{Name: "traced", Filter: map[string]string{"traceparent": ""}, Function: "echo"},
		},
		{
			name: "filters with args",
			body: `{"name":"s3","filters":[{"prefix":{"type":"com.amazonaws.s3."}},{"not":{"suffix":{"subject":".tmp"}}}],"function":"echo","args": { "bucket" : "photos" } }`,
			want: binding.Binding{
				Name: "s3",
				Filters: []eventingv1.SubscriptionsAPIFilter{
					{Prefix: map[string]string{"type": "com.amazonaws.s3."}},
					{Not: &eventingv1.SubscriptionsAPIFilter{Suffix: map[string]string{"subject": ".tmp"}}},
				},
				Function: "echo",
				Args:     json.RawMessage(`{"bucket":"photos"}`),
			},
		},
		{
			name: "cesql",
			body: `{"name":"big","filters":[{"cesql":"type LIKE 'com.example.%' AND size > 10"}],"function":"echo"}`,
			want: binding.Binding{Name: "big", Filters: []eventingv1.SubscriptionsAPIFilter{{CESQL: "type LIKE 'com.example.%' AND size > 10"}}, Function: "echo"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := binding.Decode([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Decode (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		body   string
		field  string
		detail string // a part of the detail
	}{
		{"empty body", ``, "body", "required"},
		{"not an object", `[]`, "body", "want an object"},
		{"unknown field", `{"name":"a","filter":{"type":"t"},"function":"echo","fn":"x"}`, "fn", "unknown field"},
		{"createdAt is the store's", `{"name":"a","filter":{"type":"t"},"function":"echo","createdAt":"2026-01-01T00:00:00Z"}`, "createdAt", "unknown field"},
		{"no name", `{"filter":{"type":"t"},"function":"echo"}`, "name", "required"},
		{"name not a DNS label", `{"name":"Uploads","filter":{"type":"t"},"function":"echo"}`, "name", "not a binding name"},
		{"name too long", `{"name":"` + strings.Repeat("a", binding.MaxNameLen+1) + `","filter":{"type":"t"},"function":"echo"}`, "name", "at most 40"},
		{"no function", `{"name":"a","filter":{"type":"t"}}`, "function", "required"},
		{"bad function name", `{"name":"a","filter":{"type":"t"},"function":"Echo!"}`, "function", "not a function name"},
		{"args not an object", `{"name":"a","filter":{"type":"t"},"function":"echo","args":[1]}`, "args", "want a JSON object"},
		{"no filter", `{"name":"a","function":"echo"}`, "filter", "needs a filter"},
		{"empty filter", `{"name":"a","filter":{},"function":"echo"}`, "filter", "needs a filter"},
		{"empty filters", `{"name":"a","filters":[],"function":"echo"}`, "filter", "needs a filter"},
		{"filter of every event", `{"name":"a","filter":{"type":"","source":""},"function":"echo"}`, "filter", "selects every event"},
		{"both", `{"name":"a","filter":{"type":"t"},"filters":[{"exact":{"type":"t"}}],"function":"echo"}`, "filters", "not both"},
		// Knative's own messages.
		{"attribute name with upper case", `{"name":"a","filter":{"Type":"t"},"function":"echo"}`, "filter[Type]", `invalid key name "Type"`},
		{"attribute name with the HTTP prefix", `{"name":"a","filter":{"ce-type":"t"},"function":"echo"}`, "filter[ce-type]", "lowercase alphanumeric"},
		{"filters attribute name", `{"name":"a","filters":[{"exact":{"Type":"t"}}],"function":"echo"}`, "filters[0].exact[Type]", `invalid key name "Type"`},
		{"two dialects", `{"name":"a","filters":[{"exact":{"type":"t"},"prefix":{"source":"s"}}],"function":"echo"}`, "filters", "multiple dialects"},
		{"bad cesql", `{"name":"a","filters":[{"cesql":"type = = 'x'"}],"function":"echo"}`, "filters[0].cesql", "invalid value"},
		// What Knative accepts but its filter code skips, passing every event.
		{"unknown dialect", `{"name":"a","filters":[{"regex":{"type":".*"}}],"function":"echo"}`, "filters", `unknown dialect regex`},
		{"filter without dialect", `{"name":"a","filters":[{}],"function":"echo"}`, "filters[0]", "needs one dialect"},
		{"empty exact", `{"name":"a","filters":[{"exact":{}}],"function":"echo"}`, "filters[0]", "needs one dialect"},
		{"empty prefix value", `{"name":"a","filters":[{"prefix":{"type":""}}],"function":"echo"}`, "filters[0].prefix.type", "empty value"},
		{"nested empty", `{"name":"a","filters":[{"any":[{"exact":{"type":"t"}},{}]}],"function":"echo"}`, "filters[0].any[1]", "needs one dialect"},
		{"filters not a list", `{"name":"a","filters":{"exact":{"type":"t"}},"function":"echo"}`, "filters", "want a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := binding.Decode([]byte(tc.body))
			var fe *job.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Decode: %v, want a *job.FieldError", err)
			}
			if fe.Field != tc.field || !strings.Contains(fe.Detail, tc.detail) {
				t.Errorf("Decode: field %q, detail %q; want field %q, detail with %q", fe.Field, fe.Detail, tc.field, tc.detail)
			}
		})
	}
}

func TestPaths(t *testing.T) {
	t.Parallel()
	if got, want := binding.SubscriberPath("uploads"), "/bindings/uploads"; got != want {
		t.Errorf("SubscriberPath = %q, want %q", got, want)
	}
	if got, want := binding.DeadLetterPath("uploads"), "/bindings/uploads/dead-letter"; got != want {
		t.Errorf("DeadLetterPath = %q, want %q", got, want)
	}
}

// FuzzDecode feeds POST /jobs/bindings bodies to Decode: it never panics,
// refuses with a *job.FieldError, and what it accepts has a valid name, a
// filter and args that are an object, and decodes again to itself.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"name":"uploads","filter":{"type":"com.amazonaws.s3.object-created"},"function":"echo"}`))
	f.Add([]byte(`{"name":"p","filters":[{"prefix":{"source":"https://github.com/"}},{"not":{"exact":{"subject":"x"}}}],"function":"echo","args":{"a":[1,{"b":null}]}}`))
	f.Add([]byte(`{"name":"c","filters":[{"cesql":"type LIKE 'com.%'"}],"function":"echo"}`))
	f.Add([]byte(`{"name":"x","filter":{},"function":"echo"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := binding.Decode(data)
		if err != nil {
			var fe *job.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Decode(%q) = %T %v, want a *job.FieldError", data, err, err)
			}
			return
		}
		if !binding.CheckName(b.Name) || len(b.Filter)+len(b.Filters) == 0 || b.Function == "" {
			t.Fatalf("Decode(%q) accepted %+v", data, b)
		}
		if len(b.Args) > 0 && b.Args[0] != '{' {
			t.Fatalf("Decode(%q) accepted args %s, not an object", data, b.Args)
		}
		again, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.Unmarshal(again, &m)
		delete(m, "createdAt")
		again, _ = json.Marshal(m)
		b2, err := binding.Decode(again)
		if err != nil {
			t.Fatalf("Decode of what it accepted, %s: %v", again, err)
		}
		// Args are compared as JSON values: encoding escapes what
		// decoding unescapes.
		asValue := cmp.Transformer("value", func(r json.RawMessage) any {
			var v any
			_ = json.Unmarshal(r, &v)
			return v
		})
		if diff := cmp.Diff(b, b2, asValue); diff != "" {
			t.Fatalf("Decode(%s) differs from what it decoded first (-first +again):\n%s", again, diff)
		}
	})
}
