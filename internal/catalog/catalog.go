// Package catalog is the set of declared functions: the built-in ones, from
// the declaration generated from their Go schemas (builtin.yaml), and those
// of the kjobs-functions ConfigMap (KJOBS_FUNCTIONS_FILE under make run).
// The API checks every request against it, and the dispatcher checks that a
// job's function is declared, without linking any function's code.
package catalog

import (
	"bytes"
	"cmp"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// DefaultKey is the key of kjobs-functions whose placement applies to every
// function without a key of its own. It declares no function.
const DefaultKey = "_default"

// Declaration is what a kjobs-functions entry declares of its function,
// beside its placement (resources, nodeSelector, ...; see package
// internal/runner/kube). Its fields are named so that none reads like
// another: argsSchema is the JSON Schema of the job's args, containerArgs
// the arguments of the container.
type Declaration struct {
	// Image runs the function; a digest-pinned reference
	// (registry/repo@sha256:...) is recommended, so that what runs is what
	// was declared. Empty runs a built-in function in the processor image.
	Image string `json:"image,omitempty"`
	// Command and ContainerArgs replace the image's entrypoint and its
	// arguments, as a container's command and args do. Optional.
	Command       []string `json:"command,omitempty"`
	ContainerArgs []string `json:"containerArgs,omitempty"`
	// ArgsSchema is the JSON Schema (draft 2020-12 unless it says
	// otherwise) that a job's args must satisfy. Without one, any args
	// object is accepted.
	ArgsSchema json.RawMessage `json:"argsSchema,omitempty"`
	// Local is the binary that runs the function under make run, which has
	// no container runtime: a function with an image runs there only when
	// it names one. Ignored in a cluster.
	Local string `json:"local,omitempty"`
	// Doc says what the function does.
	Doc string `json:"doc,omitempty"`
}

// declares reports whether d declares a function, rather than only placing
// one.
func (d Declaration) declares() bool {
	return d.Image != "" || d.Local != "" || len(d.ArgsSchema) > 0 || len(d.Command) > 0 || len(d.ContainerArgs) > 0
}

// placementFields are the fields of an entry that place a function's pods
// (kube.Placement's); the catalog accepts and ignores them, so that it can
// parse an entry as strictly as the dispatcher's runner does. A test of
// package kube checks that the two agree.
var placementFields = []string{"resources", "nodeSelector", "tolerations", "affinity", "podLabels", "podAnnotations", "doNotDisrupt", "maxRunning"}

// PlacementFields returns the entry fields that the catalog leaves to the
// runner.
func PlacementFields() []string { return slices.Clone(placementFields) }

// Function is one declared function.
type Function struct {
	Name string
	Declaration
	schema *jsonschema.Schema
}

//go:embed builtin.yaml
var builtinYAML []byte

// Catalog is the declared functions. It is safe for concurrent use: Set
// replaces the ConfigMap's declarations while requests are checked.
type Catalog struct {
	local   bool
	builtin map[string]*Function

	mu       sync.RWMutex
	declared map[string]*Function
	// malformed holds the error of each entry that could not be read, so
	// that a request for its function says why rather than "unknown".
	malformed map[string]error
}

// builtinNames are the built-in functions' names, read once.
var builtinNames = sync.OnceValue(func() map[string]bool {
	names := map[string]bool{}
	for n := range New(false).builtin {
		names[n] = true
	}
	return names
})

// Builtin reports whether fn is a function of the processor image, which
// runs in that image whatever kjobs-functions says.
func Builtin(fn string) bool { return builtinNames()[fn] }

// New returns the catalog of the built-in functions. local is make run's
// catalog, where a function with an image runs only if it names a local
// binary. It panics if the generated builtin.yaml is malformed, which its
// test rules out.
func New(local bool) *Catalog {
	c := &Catalog{local: local, builtin: map[string]*Function{}}
	var entries map[string]json.RawMessage
	if err := yaml.Unmarshal(builtinYAML, &entries); err != nil {
		panic(fmt.Sprintf("catalog: builtin.yaml: %v", err))
	}
	for n, raw := range entries {
		f, err := parse(n, raw)
		if err != nil {
			panic(fmt.Sprintf("catalog: builtin.yaml: %v", err))
		}
		c.builtin[n] = f
	}
	return c
}

// Set replaces the ConfigMap's declarations with those of data, its Data
// (nil for a ConfigMap that does not exist). Entries that only place a
// function, and _default, declare nothing. A malformed entry is reported,
// naming its key, and the others are set all the same; its function is
// refused until it is fixed.
func (c *Catalog) Set(data map[string]string) error {
	declared := map[string]*Function{}
	malformed := map[string]error{}
	for _, key := range slices.Sorted(maps.Keys(data)) {
		raw, err := yaml.YAMLToJSONStrict([]byte(data[key]))
		if err == nil {
			var f *Function
			if f, err = parse(key, raw); err == nil && f.declares() {
				switch {
				case key == DefaultKey:
					err = fmt.Errorf("%s places every function and declares none; move image, command, containerArgs, argsSchema and local to a function's own key", DefaultKey)
				case c.builtin[key] != nil:
					err = fmt.Errorf("%s is a built-in function; its entry may only place it", key)
				default:
					declared[key] = f
				}
			}
		}
		if err != nil {
			malformed[key] = fmt.Errorf("kjobs-functions key %q is malformed: %w", key, err)
		}
	}
	c.mu.Lock()
	c.declared, c.malformed = declared, malformed
	c.mu.Unlock()
	errs := make([]error, 0, len(malformed))
	for _, key := range slices.Sorted(maps.Keys(malformed)) {
		errs = append(errs, malformed[key])
	}
	return errors.Join(errs...)
}

// Update sets the declarations of a ConfigMap that a watch delivers, as Set
// does, logging its malformed entries: a watch has no caller to return
// them to, and one bad key must not stop the others from being served.
func (c *Catalog) Update(data map[string]string, log *slog.Logger) {
	if err := c.Set(data); err != nil {
		log.Error("the functions ConfigMap has malformed entries; their functions are refused", "error", err)
	}
}

// parse reads one entry, as JSON, strictly: a misspelt field is an error,
// not a declaration silently ignored.
func parse(key string, raw []byte) (*Function, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fmt.Errorf("want a mapping of fields: %w", err)
	}
	for _, k := range placementFields {
		delete(fields, k)
	}
	if _, ok := fields["args"]; ok {
		return nil, errors.New(`unknown field "args": write the JSON Schema of the job's args as argsSchema, and the container's arguments as containerArgs`)
	}
	own, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	f := &Function{Name: key}
	strict, err := kjson.UnmarshalStrict(own, &f.Declaration)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(strict...); err != nil {
		return nil, err
	}
	if f.Image != "" {
		if _, err := name.ParseReference(f.Image); err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
	}
	if len(f.ArgsSchema) > 0 {
		if f.schema, err = compile(key, f.ArgsSchema); err != nil {
			return nil, fmt.Errorf("argsSchema: %w", err)
		}
	}
	return f, nil
}

// compile compiles a schema that may not refer to anything outside
// itself: a schema read from a ConfigMap must not make the API read files
// or fetch URLs.
func compile(key string, schema []byte) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(jsonschema.SchemeURLLoader{})
	url := "kjobs:///functions/" + key + ".json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	return c.Compile(url)
}

// Lookup returns the function declared as name. It fails with an
// *UnknownError for a function that is not declared, and with an
// *UnrunnableError for one that is declared but cannot run here.
func (c *Catalog) Lookup(fn string) (*Function, error) {
	if f, ok := c.builtin[fn]; ok {
		return f, nil
	}
	c.mu.RLock()
	f, ok := c.declared[fn]
	bad := c.malformed[fn]
	c.mu.RUnlock()
	switch {
	case bad != nil:
		return nil, &UnrunnableError{Function: fn, Reason: bad.Error() + "; the operator must fix it"}
	case !ok:
		return nil, &UnknownError{Function: fn, Known: c.Names()}
	case c.local && f.Local == "" && f.Image != "":
		return nil, &UnrunnableError{Function: fn, Reason: fmt.Sprintf("function %q runs in image %s, and make run has no container runtime; name a binary for it with local: in KJOBS_FUNCTIONS_FILE", fn, f.Image)}
	case c.local && f.Local == "":
		return nil, &UnrunnableError{Function: fn, Reason: fmt.Sprintf("function %q declares no binary to run under make run; name one with local: in KJOBS_FUNCTIONS_FILE", fn)}
	case !c.local && f.Image == "":
		return nil, &UnrunnableError{Function: fn, Reason: fmt.Sprintf("function %q declares no image; declare the image that runs it in kjobs-functions (local: runs under make run alone)", fn)}
	}
	return f, nil
}

// Names returns the names of every declared function, sorted.
func (c *Catalog) Names() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	names := slices.Collect(maps.Keys(c.builtin))
	names = slices.AppendSeq(names, maps.Keys(c.declared))
	slices.Sort(names)
	return names
}

// Check checks that fn is declared and runs here, and that args satisfy
// its schema. A schema's refusal is an *ArgsError.
func (c *Catalog) Check(fn string, args map[string]any) error {
	f, err := c.Lookup(fn)
	if err != nil {
		return err
	}
	return f.CheckArgs(args)
}

// CheckArgs checks args against f's schema; no schema accepts any args.
func (f *Function) CheckArgs(args map[string]any) error {
	if f.schema == nil {
		return nil
	}
	if args == nil {
		args = map[string]any{}
	}
	var inst any = args
	if !decoded(inst) {
		// The schema library reads numbers as json.Number or float64, and
		// only plain maps and slices: args built in Go may hold other
		// types. Encoding and decoding once makes them what a request
		// would hold. Args decoded from a request are that already, and
		// skip it: POST /jobs checks every job's args.
		raw, err := json.Marshal(args)
		if err != nil {
			return &ArgsError{Function: f.Name, Errors: []FieldError{{Pointer: "/args", Detail: err.Error()}}}
		}
		if inst, err = jsonschema.UnmarshalJSON(bytes.NewReader(raw)); err != nil {
			return &ArgsError{Function: f.Name, Errors: []FieldError{{Pointer: "/args", Detail: err.Error()}}}
		}
	}
	err := f.schema.Validate(inst)
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return err
	}
	ae := &ArgsError{Function: f.Name}
	leaves(verr, func(e *jsonschema.ValidationError) {
		ae.Errors = append(ae.Errors, FieldError{Pointer: pointer(append([]string{"args"}, e.InstanceLocation...)), Detail: e.ErrorKind.LocalizedString(english)})
	})
	// The schema's keywords are evaluated in no set order: sorting makes
	// the answer the same for the same request.
	slices.SortFunc(ae.Errors, func(a, b FieldError) int {
		return cmp.Or(strings.Compare(a.Pointer, b.Pointer), strings.Compare(a.Detail, b.Detail))
	})
	return ae
}

// decoded reports whether v holds only what decoding JSON with UseNumber
// makes: the values the schema library reads as they are.
func decoded(v any) bool {
	switch v := v.(type) {
	case nil, bool, string, json.Number:
		return true
	case map[string]any:
		for _, e := range v {
			if !decoded(e) {
				return false
			}
		}
		return true
	case []any:
		for _, e := range v {
			if !decoded(e) {
				return false
			}
		}
		return true
	}
	return false
}

// english prints the schema library's messages as its own Error does
// (numbers grouped by thousands: "got 5,000, want 4,096").
var english = message.NewPrinter(language.English)

// leaves calls fn with each error that has no causes: the ones that say
// what is wrong, where the others only group them.
func leaves(e *jsonschema.ValidationError, fn func(*jsonschema.ValidationError)) {
	if len(e.Causes) == 0 {
		fn(e)
		return
	}
	for _, c := range e.Causes {
		leaves(c, fn)
	}
}

// pointer writes an RFC 6901 JSON Pointer of the tokens.
func pointer(tokens []string) string {
	var b strings.Builder
	esc := strings.NewReplacer("~", "~0", "/", "~1")
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(esc.Replace(t))
	}
	return b.String()
}

// UnknownError is a function that is not declared.
type UnknownError struct {
	Function string
	Known    []string
}

func (e *UnknownError) Error() string {
	return fmt.Sprintf("function %q does not exist; the functions are %s", e.Function, strings.Join(e.Known, ", "))
}

// UnrunnableError is a function that is declared but cannot run in this
// install, and why.
type UnrunnableError struct {
	Function string
	Reason   string
}

func (e *UnrunnableError) Error() string { return e.Reason }

// FieldError is one place where args fail their schema.
type FieldError struct {
	// Pointer is the JSON Pointer of the failing value in the request
	// body, such as /args/width.
	Pointer string
	// Detail is the schema library's message, such as "minimum: got 0,
	// want 1".
	Detail string
}

// ArgsError is args that fail their function's schema.
type ArgsError struct {
	Function string
	Errors   []FieldError
}

func (e *ArgsError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = strings.TrimPrefix(fe.Pointer, "/") + ": " + fe.Detail
	}
	return strings.Join(parts, "; ")
}
