package catalog

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const resize = `image: registry.example/team/resize@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
command: [/ko-app/resize]
containerArgs: [--verbose]
resources: {requests: {cpu: 100m}}
maxRunning: 2
argsSchema:
  type: object
  required: [url, width]
  additionalProperties: false
  properties:
    url: {type: string, format: uri}
    width: {type: integer, minimum: 1, maximum: 4096}
    tags: {type: array, items: {type: string}}
`

func TestSet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		data    map[string]string
		wantErr string // "" when every entry is well-formed
		names   []string
	}{
		{"none", nil, "", []string{"echo", "fail", "flaky", "sample", "sleep"}},
		{"placement only declares nothing", map[string]string{"_default": "maxRunning: 2", "report": "doNotDisrupt: true", "sleep": "maxRunning: 1"}, "",
			[]string{"echo", "fail", "flaky", "sample", "sleep"}},
		{"declared", map[string]string{"resize": resize}, "", []string{"echo", "fail", "flaky", "resize", "sample", "sleep"}},
		{"local only", map[string]string{"dev": "local: /tmp/dev"}, "", []string{"dev", "echo", "fail", "flaky", "sample", "sleep"}},
		{"misspelt field", map[string]string{"resize": "imgae: x"}, `kjobs-functions key "resize" is malformed: unknown field "imgae"`, nil},
		{"args is ambiguous", map[string]string{"resize": "image: ghcr.io/team/x:1\nargs: {type: object}"}, `kjobs-functions key "resize" is malformed: unknown field "args": write the JSON Schema of the job's args as argsSchema, and the container's arguments as containerArgs`, nil},
		{"bad image", map[string]string{"resize": "image: Not An Image"}, `kjobs-functions key "resize" is malformed: image: `, nil},
		{"bad schema", map[string]string{"resize": "image: ghcr.io/team/x:1\nargsSchema: {type: objet}"}, `kjobs-functions key "resize" is malformed: argsSchema: `, nil},
		{"remote ref refused", map[string]string{"resize": "image: ghcr.io/team/x:1\nargsSchema: {$ref: 'https://example.com/s.json'}"}, `kjobs-functions key "resize" is malformed: argsSchema: `, nil},
		{"file ref refused", map[string]string{"resize": "image: ghcr.io/team/x:1\nargsSchema: {$ref: 'file:///etc/passwd'}"}, `kjobs-functions key "resize" is malformed: argsSchema: `, nil},
		{"declaring _default", map[string]string{"_default": "image: ghcr.io/team/x:1"}, `kjobs-functions key "_default" is malformed: _default places every function and declares none`, nil},
		{"redeclaring a built-in", map[string]string{"sleep": "image: ghcr.io/team/x:1"}, `kjobs-functions key "sleep" is malformed: sleep is a built-in function; its entry may only place it`, nil},
		{"not YAML", map[string]string{"resize": "image: [x"}, `kjobs-functions key "resize" is malformed: `, nil},
		{"not a mapping", map[string]string{"resize": "- image"}, `kjobs-functions key "resize" is malformed: want a mapping of fields`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := New(false)
			err := c.Set(tt.data)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.names, c.Names()); diff != "" {
					t.Errorf("Names() (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("Set() = %v, want an error starting %q", err, tt.wantErr)
			}
			// The entry's function is refused with the reason, not as
			// unknown; a built-in one keeps its generated declaration.
			for key := range tt.data {
				if c.builtin[key] != nil {
					if err := c.Check(key, map[string]any{"seconds": 1}); err != nil {
						t.Errorf("Check(%q) = %v, want the built-in function", key, err)
					}
					continue
				}
				var ue *UnrunnableError
				if err := c.Check(key, nil); !errors.As(err, &ue) || !strings.HasPrefix(ue.Error(), tt.wantErr) {
					t.Errorf("Check(%q) = %v, want the malformed entry's error", key, err)
				}
			}
		})
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	data := map[string]string{"resize": resize, "dev": "local: /tmp/dev", "typed": "argsSchema: {type: object}"}
	tests := []struct {
		name  string
		local bool
		fn    string
		args  string
		want  error
	}{
		{"valid", false, "resize", `{"url": "https://x/cat.png", "width": 300, "tags": ["a"]}`, nil},
		{"schema errors with their pointers", false, "resize", `{"url": "https://x/cat.png", "width": 0, "tags": ["a", 1]}`, &ArgsError{Function: "resize", Errors: []FieldError{
			{Pointer: "/args/tags/1", Detail: "got number, want string"},
			{Pointer: "/args/width", Detail: "minimum: got 0, want 1"},
		}}},
		{"missing", false, "resize", `{}`, &ArgsError{Function: "resize", Errors: []FieldError{{Pointer: "/args", Detail: "missing properties 'url', 'width'"}}}},
		{"pointer escaped", false, "resize", `{"url": "u", "width": 1, "a/b~c": 1}`, &ArgsError{Function: "resize", Errors: []FieldError{{Pointer: "/args", Detail: "additional properties 'a/b~c' not allowed"}}}},
		{"built-in", false, "sleep", `{"seconds": -1}`, &ArgsError{Function: "sleep", Errors: []FieldError{{Pointer: "/args/seconds", Detail: "minimum: got -1, want 0"}}}},
		{"unknown", false, "thumbnail", `{}`, &UnknownError{Function: "thumbnail", Known: []string{"dev", "echo", "fail", "flaky", "resize", "sample", "sleep", "typed"}}},
		{"image under make run", true, "resize", `{"url": "u", "width": 1}`, &UnrunnableError{Function: "resize",
			Reason: `function "resize" runs in image registry.example/team/resize@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef, and make run has no container runtime; name a binary for it with local: in KJOBS_FUNCTIONS_FILE`}},
		{"local under make run", true, "dev", `{}`, nil},
		{"local in a cluster", false, "dev", `{}`, &UnrunnableError{Function: "dev",
			Reason: `function "dev" declares no image; declare the image that runs it in kjobs-functions (local: runs under make run alone)`}},
		{"schema alone under make run", true, "typed", `{}`, &UnrunnableError{Function: "typed",
			Reason: `function "typed" declares no binary to run under make run; name one with local: in KJOBS_FUNCTIONS_FILE`}},
		{"built-in under make run", true, "echo", `{"any": [1]}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := New(tt.local)
			if err := c.Set(data); err != nil {
				t.Fatal(err)
			}
			var args map[string]any
			dec := json.NewDecoder(strings.NewReader(tt.args))
			dec.UseNumber()
			if err := dec.Decode(&args); err != nil {
				t.Fatal(err)
			}
			got := c.Check(tt.fn, args)
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b error) bool { return a.Error() == b.Error() })); diff != "" {
				t.Errorf("Check() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCheckBuiltInGo checks args built in Go, as a schedule's are, which
// hold types a request's never do: they are judged as their JSON would be.
func TestCheckBuiltInGo(t *testing.T) {
	t.Parallel()
	c := New(false)
	if err := c.Set(map[string]string{"resize": resize}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args map[string]any
		want error
	}{
		{"ints and a string slice", map[string]any{"url": "u", "width": 300, "tags": []string{"a"}}, nil},
		{"an int below the minimum", map[string]any{"url": "u", "width": int64(0)}, &ArgsError{Function: "resize", Errors: []FieldError{{Pointer: "/args/width", Detail: "minimum: got 0, want 1"}}}},
		{"a float64 below the minimum", map[string]any{"url": "u", "width": 0.5}, &ArgsError{Function: "resize", Errors: []FieldError{{Pointer: "/args/width", Detail: "got number, want integer"}}}},
		{"a number where a string goes, in a nested slice", map[string]any{"url": "u", "width": 1, "tags": []any{"a", 1}}, &ArgsError{Function: "resize", Errors: []FieldError{{Pointer: "/args/tags/1", Detail: "got number, want string"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := c.Check("resize", tt.args)
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b error) bool { return a.Error() == b.Error() })); diff != "" {
				t.Errorf("Check() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestArgsErrorMessage(t *testing.T) {
	t.Parallel()
	e := &ArgsError{Function: "resize", Errors: []FieldError{{Pointer: "/args/width", Detail: "minimum: got 0, want 1"}, {Pointer: "/args", Detail: "missing property 'url'"}}}
	if got, want := e.Error(), "args/width: minimum: got 0, want 1; args: missing property 'url'"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
