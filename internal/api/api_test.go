package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/kjobs/kjobs/internal/api"
	"github.com/kjobs/kjobs/internal/binding"
	localbinding "github.com/kjobs/kjobs/internal/binding/local"
	"github.com/kjobs/kjobs/internal/catalog"
	"github.com/kjobs/kjobs/internal/event"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/problem"
	"github.com/kjobs/kjobs/internal/schedule"
	localschedule "github.com/kjobs/kjobs/internal/schedule/local"
	"github.com/kjobs/kjobs/internal/store"
	"github.com/kjobs/kjobs/internal/testenv"
)

// recorder is an event.Sender that keeps what it is given, or fails.
type recorder struct {
	mu     sync.Mutex
	events []cloudevents.Event
	fail   error
}

func (r *recorder) Send(_ context.Context, e cloudevents.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.events = append(r.events, e)
	return nil
}

func (r *recorder) sent() []cloudevents.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]cloudevents.Event(nil), r.events...)
}

type env struct {
	url       string
	rdb       *redis.Client
	sender    *recorder
	schedules schedule.Store
	bindings  binding.Store
}

const token = "s3cret-token"

// resizeDecl declares a function of its own image, with an args schema, as
// kjobs-functions would.
const resizeDecl = `image: registry.example/team/resize@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
argsSchema:
  type: object
  required: [url]
  additionalProperties: false
  properties:
    url: {type: string}
    width: {type: integer, minimum: 1, maximum: 4096}
    crop: {type: object, properties: {x: {type: integer, minimum: 0}}}
`

func setup(t *testing.T, withAuth bool) env {
	t.Helper()
	rdb := testenv.Redis(t)
	sender := &recorder{}
	schedules := localschedule.New(sender)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = schedules.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	bindings := localbinding.New()
	functions := catalog.New(false)
	if err := functions.Set(map[string]string{"resize": resizeDecl}); err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{Store: store.New(rdb, store.Options{}), Sender: sender, Schedules: schedules, Bindings: bindings, Functions: functions}
	if withAuth {
		path := filepath.Join(t.TempDir(), "tokens")
		if err := os.WriteFile(path, []byte("other-token\n"+token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		tokens, err := api.LoadTokens(path)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Auth = tokens
	}
	srv := httptest.NewServer(validating(t, withAuth, api.New(cfg)))
	t.Cleanup(srv.Close)
	return env{url: srv.URL, rdb: rdb, sender: sender, schedules: schedules, bindings: bindings}
}

type request struct {
	method, path, body string
	header             map[string]string
}

func (e env) do(t *testing.T, r request) (*http.Response, []byte) {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, e.url+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestBadInput(t *testing.T) {
	e := setup(t, false)
	huge := `{"function":"echo","args":{"a":"` + strings.Repeat("x", api.MaxBody) + `"}}`
	tests := []struct {
		name      string
		req       request
		status    int
		kind      problem.Kind
		field     string
		detailHas string
	}{
		{"malformed json", request{"POST", "/jobs", `{"function":`, nil}, 400, problem.MalformedJSON, "", "unexpected end"},
		{"not an object", request{"POST", "/jobs", `[1,2]`, nil}, 400, problem.MalformedJSON, "", "got a JSON array, want an object"},
		{"trailing data", request{"POST", "/jobs", `{"function":"echo"} {}`, nil}, 400, problem.MalformedJSON, "", "after the JSON object"},
		{"unknown field", request{"POST", "/jobs", `{"function":"echo","priority":1}`, nil}, 400, problem.InvalidField, "priority", "unknown field"},
		{"function of the wrong type", request{"POST", "/jobs", `{"function":5}`, nil}, 400, problem.InvalidField, "function", "want a string"},
		{"args of the wrong type", request{"POST", "/jobs", `{"function":"echo","args":[]}`, nil}, 400, problem.InvalidField, "args", "got a JSON array, want an object"},
		{"arg of the wrong type", request{"POST", "/jobs", `{"function":"sleep","args":{"seconds":true}}`, nil}, 400, problem.InvalidArgs, "args.seconds", "args/seconds: got boolean, want number or string"},
		{"args too large", request{"POST", "/jobs", `{"function":"echo","args":{"a":"` + strings.Repeat("x", job.MaxArgsBytes) + `"}}`, nil}, 400, problem.InvalidField, "args", "at most 65536 allowed"},
		{"declared schema", request{"POST", "/jobs", `{"function":"resize","args":{"url":"u","width":0}}`, nil}, 400, problem.InvalidArgs, "args.width", "args/width: minimum: got 0, want 1"},
		{"declared schema, nested", request{"POST", "/jobs", `{"function":"resize","args":{"url":"u","crop":{"x":-1}}}`, nil}, 400, problem.InvalidArgs, "args.crop.x", "args/crop/x: minimum: got -1, want 0"},
		{"declared schema, missing", request{"POST", "/jobs", `{"function":"resize"}`, nil}, 400, problem.InvalidArgs, "args", "args: missing property 'url'"},
		{"bad function name", request{"POST", "/jobs", `{"function":"Sleep Now"}`, nil}, 400, problem.InvalidField, "function", "not a function name"},
		{"unknown function", request{"POST", "/jobs", `{"function":"nope"}`, nil}, 400, problem.UnknownFunction, "function", "echo, fail, flaky, resize, sample, sleep"},
		{"invalid args", request{"POST", "/jobs", `{"function":"sleep","args":{"seconds":"soon"}}`, nil}, 400, problem.InvalidArgs, "args.seconds", "args/seconds: 'soon' does not match pattern"},
		{"unknown arg", request{"POST", "/jobs", `{"function":"sleep","args":{"secs":"1"}}`, nil}, 400, problem.InvalidArgs, "args", "additional properties 'secs' not allowed"},
		{"schedule set by a client", request{"POST", "/jobs", `{"function":"echo","schedule":"x"}`, nil}, 400, problem.InvalidField, "schedule", "POST /jobs/schedule"},
		{"binding set by a client", request{"POST", "/jobs", `{"function":"echo","binding":"uploads"}`, nil}, 400, problem.InvalidField, "binding", "POST /jobs/bindings"},
		{"event set by a client", request{"POST", "/jobs", `{"function":"echo","event":{"source":"s","id":"1","type":"t"}}`, nil}, 400, problem.InvalidField, "event", "POST /jobs/bindings"},
		{"huge body", request{"POST", "/jobs", huge, nil}, 413, problem.BodyTooLarge, "", "131072 bytes"},
		{"wrong content type", request{"POST", "/jobs", `{"function":"echo"}`, map[string]string{"Content-Type": "text/plain"}}, 415, problem.UnsupportedMediaType, "", "Content-Type: application/json"},
		{"form content type", request{"POST", "/jobs", `{"function":"echo"}`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 415, problem.UnsupportedMediaType, "", "application/json"},
		{"timeout above the deadline", request{"POST", "/jobs", `{"function":"echo","timeout":"11m"}`, nil}, 400, problem.InvalidField, "timeout", "job deadline of 10m0s"},
		{"timeout not a duration", request{"POST", "/jobs", `{"function":"echo","timeout":"ten seconds"}`, nil}, 400, problem.InvalidField, "timeout", "not a duration"},
		{"timeout a number", request{"POST", "/jobs", `{"function":"echo","timeout":10}`, nil}, 400, problem.InvalidField, "timeout", "want a duration string"},
		{"timeout zero", request{"POST", "/jobs", `{"function":"echo","timeout":"0s"}`, nil}, 400, problem.InvalidField, "timeout", "not positive"},
		{"timeout negative", request{"POST", "/jobs", `{"function":"echo","timeout":"-5s"}`, nil}, 400, problem.InvalidField, "timeout", "not positive"},
		{"malformed label key", request{"POST", "/jobs", `{"function":"echo","labels":{"team/":"data"}}`, nil}, 400, problem.InvalidField, "labels", "not a label key"},
		{"malformed label value", request{"POST", "/jobs", `{"function":"echo","labels":{"team":"data team"}}`, nil}, 400, problem.InvalidField, "labels", "not a label value"},
		{"reserved label", request{"POST", "/jobs", `{"function":"echo","labels":{"kjobs.dev/attempt":"1"}}`, nil}, 400, problem.InvalidField, "labels", "set by kjobs itself"},
		{"reserved managed-by label", request{"POST", "/jobs", `{"function":"echo","labels":{"app.kubernetes.io/managed-by":"me"}}`, nil}, 400, problem.InvalidField, "labels", "set by kjobs itself"},
		{"labels not strings", request{"POST", "/jobs", `{"function":"echo","labels":{"n":1}}`, nil}, 400, problem.InvalidField, "labels", "want a string"},
		{"idempotency key too long", request{"POST", "/jobs", `{"function":"echo"}`, map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}}, 400, problem.InvalidHeader, "", "Idempotency-Key"},
		{"unknown status", request{"GET", "/jobs?status=done", "", nil}, 400, problem.InvalidQuery, "status", "queued, waiting, running"},
		{"limit zero", request{"GET", "/jobs?limit=0", "", nil}, 400, problem.InvalidQuery, "limit", "1 to 200"},
		{"limit not a number", request{"GET", "/jobs?limit=ten", "", nil}, 400, problem.InvalidQuery, "limit", "1 to 200"},
		{"limit too large", request{"GET", "/jobs?limit=1000", "", nil}, 400, problem.InvalidQuery, "limit", "1 to 200"},
		{"bad cursor", request{"GET", "/jobs?cursor=not-a-cursor", "", nil}, 400, problem.InvalidCursor, "cursor", "next value"},
		{"unknown query parameter", request{"GET", "/jobs?page=2", "", nil}, 400, problem.InvalidQuery, "page", "status, label, binding, limit and cursor"},
		{"label query without =", request{"GET", "/jobs?label=team", "", nil}, 400, problem.InvalidQuery, "label", "want key=value"},
		{"label query with a bad key", request{"GET", "/jobs?label=-team=data", "", nil}, 400, problem.InvalidQuery, "label", "not a label key"},
		{"label query with a bad value", request{"GET", "/jobs?label=team=a%20b", "", nil}, 400, problem.InvalidQuery, "label", "not a label value"},
		{"label query with a key twice", request{"GET", "/jobs?label=team=a&label=team=b", "", nil}, 400, problem.InvalidQuery, "label", "given twice"},
		{"binding query with a bad name", request{"GET", "/jobs?binding=Uploads", "", nil}, 400, problem.InvalidQuery, "binding", "not a binding name"},
		{"unknown job", request{"GET", "/jobs/0199a6a0-0000-7000-8000-000000000000", "", nil}, 404, problem.NotFound, "", "no job"},
		{"malformed job id", request{"GET", "/jobs/NOT_AN_ID", "", nil}, 404, problem.NotFound, "", "no job"},
		{"unknown route", request{"GET", "/queues", "", nil}, 404, problem.NotFound, "", "/queues"},
		{"wrong method", request{"PUT", "/jobs", `{}`, nil}, 405, problem.MethodNotAllowed, "", "GET or POST"},
		{"schedule without body", request{"POST", "/jobs/schedule", "", nil}, 400, problem.MalformedJSON, "", "required"},
		{"schedule without cron", request{"POST", "/jobs/schedule", `{"function":"echo"}`, nil}, 400, problem.InvalidCron, "cron", "required"},
		{"cron with too few fields", request{"POST", "/jobs/schedule", `{"cron":"* * *","function":"echo"}`, nil}, 400, problem.InvalidCron, "cron", "expected 5 to 6 fields, found 3: [* * *]"},
		{"cron out of range", request{"POST", "/jobs/schedule", `{"cron":"61 * * * *","function":"echo"}`, nil}, 400, problem.InvalidCron, "cron", "end of range (61) above maximum (59): 61"},
		{"cron @every", request{"POST", "/jobs/schedule", `{"cron":"@every 1m","function":"echo"}`, nil}, 400, problem.InvalidCron, "cron", "unsupported descriptor @every"},
		{"cron unknown descriptor", request{"POST", "/jobs/schedule", `{"cron":"@fortnightly","function":"echo"}`, nil}, 400, problem.InvalidCron, "cron", "unrecognized descriptor: @fortnightly"},
		{"unknown timezone", request{"POST", "/jobs/schedule", `{"cron":"0 9 * * *","timezone":"Mars/Olympus","function":"echo"}`, nil}, 400, problem.InvalidTimezone, "timezone", "provided bad location Mars/Olympus"},
		{"schedule of an unknown function", request{"POST", "/jobs/schedule", `{"cron":"* * * * *","function":"nope"}`, nil}, 400, problem.UnknownFunction, "function", "does not exist"},
		{"schedule with bad args", request{"POST", "/jobs/schedule", `{"cron":"* * * * *","function":"sleep","args":{"seconds":-1}}`, nil}, 400, problem.InvalidArgs, "args.seconds", "args/seconds: minimum: got -1, want 0"},
		{"schedule with bad declared args", request{"POST", "/jobs/schedule", `{"cron":"* * * * *","function":"resize","args":{"url":1}}`, nil}, 400, problem.InvalidArgs, "args.url", "args/url: got number, want string"},
		{"schedule unknown field", request{"POST", "/jobs/schedule", `{"cron":"* * * * *","function":"echo","every":"1m"}`, nil}, 400, problem.InvalidField, "every", "unknown field"},
		{"unknown schedule", request{"GET", "/jobs/schedule/nope", "", nil}, 404, problem.NotFound, "", "no schedule"},
		{"delete unknown schedule", request{"DELETE", "/jobs/schedule/nope", "", nil}, 404, problem.NotFound, "", "no schedule"},
		{"cancel unknown job", request{"POST", "/jobs/0199a6a0-0000-7000-8000-000000000000/cancel", "", nil}, 404, problem.NotFound, "", "no job"},
		{"cancel malformed job id", request{"POST", "/jobs/NOT_AN_ID/cancel", "", nil}, 404, problem.NotFound, "", "no job"},
		{"cancel with GET", request{"GET", "/jobs/0199a6a0-0000-7000-8000-000000000000/cancel", "", nil}, 405, problem.MethodNotAllowed, "", "use POST"},
		{"pause unknown schedule", request{"POST", "/jobs/schedule/nope/pause", "", nil}, 404, problem.NotFound, "", `no schedule "nope"`},
		{"resume unknown schedule", request{"POST", "/jobs/schedule/nope/resume", "", nil}, 404, problem.NotFound, "", `no schedule "nope"`},
		{"pause with GET", request{"GET", "/jobs/schedule/nope/pause", "", nil}, 405, problem.MethodNotAllowed, "", "use POST"},
		{"resume with DELETE", request{"DELETE", "/jobs/schedule/nope/resume", "", nil}, 405, problem.MethodNotAllowed, "", "use POST"},
		{"binding without body", request{"POST", "/jobs/bindings", "", nil}, 400, problem.MalformedJSON, "", "required"},
		{"binding malformed json", request{"POST", "/jobs/bindings", `{"name":`, nil}, 400, problem.MalformedJSON, "", "unexpected end"},
		{"binding unknown field", request{"POST", "/jobs/bindings", `{"name":"a","filter":{"type":"t"},"function":"echo","broker":"x"}`, nil}, 400, problem.InvalidField, "broker", "unknown field"},
		{"binding without name", request{"POST", "/jobs/bindings", `{"filter":{"type":"t"},"function":"echo"}`, nil}, 400, problem.InvalidField, "name", "required"},
		{"binding name not a DNS label", request{"POST", "/jobs/bindings", `{"name":"My_Uploads","filter":{"type":"t"},"function":"echo"}`, nil}, 400, problem.InvalidField, "name", "not a binding name"},
		{"binding without filter", request{"POST", "/jobs/bindings", `{"name":"a","function":"echo"}`, nil}, 400, problem.InvalidFilter, "filter", "selects every event is refused"},
		{"binding empty filter", request{"POST", "/jobs/bindings", `{"name":"a","filter":{},"function":"echo"}`, nil}, 400, problem.InvalidFilter, "filter", "needs a filter"},
		{"binding empty filters", request{"POST", "/jobs/bindings", `{"name":"a","filters":[{}],"function":"echo"}`, nil}, 400, problem.InvalidFilter, "filters[0]", "one dialect: exact, prefix, suffix, all, any, not or cesql"},
		{"binding unknown dialect", request{"POST", "/jobs/bindings", `{"name":"a","filters":[{"regex":{"type":"t.*"}}],"function":"echo"}`, nil}, 400, problem.InvalidFilter, "filters", "unknown dialect regex"},
		{"binding attribute name Type", request{"POST", "/jobs/bindings", `{"name":"a","filter":{"Type":"t"},"function":"echo"}`, nil}, 400, problem.InvalidFilter, "filter[Type]", "Attribute name must start with a letter and can only contain lowercase alphanumeric"},
		{"binding attribute name ce-type", request{"POST", "/jobs/bindings", `{"name":"a","filters":[{"prefix":{"ce-type":"com."}}],"function":"echo"}`, nil}, 400, problem.InvalidFilter, "filters[0].prefix[ce-type]", `invalid key name "ce-type"`},
		{"binding two dialects", request{"POST", "/jobs/bindings", `{"name":"a","filters":[{"exact":{"type":"t"},"suffix":{"type":"t"}}],"function":"echo"}`, nil}, 400, problem.InvalidFilter, "filters", "multiple dialects found"},
		{"binding filter and filters", request{"POST", "/jobs/bindings", `{"name":"a","filter":{"type":"t"},"filters":[{"exact":{"type":"t"}}],"function":"echo"}`, nil}, 400, problem.InvalidFilter, "filters", "not both"},
		{"binding bad cesql", request{"POST", "/jobs/bindings", `{"name":"a","filters":[{"cesql":"type ="}],"function":"echo"}`, nil}, 400, problem.InvalidFilter, "filters[0].cesql", "invalid value"},
		{"binding unknown function", request{"POST", "/jobs/bindings", `{"name":"a","filter":{"type":"t"},"function":"nope"}`, nil}, 400, problem.UnknownFunction, "function", "does not exist"},
		{"binding bad args", request{"POST", "/jobs/bindings", `{"name":"a","filter":{"type":"t"},"function":"sleep","args":{"seconds":-1}}`, nil}, 400, problem.InvalidArgs, "args.seconds", "args/seconds: minimum: got -1, want 0"},
		{"binding args not an object", request{"POST", "/jobs/bindings", `{"name":"a","filter":{"type":"t"},"function":"echo","args":"x"}`, nil}, 400, problem.InvalidField, "args", "want a JSON object"},
		{"unknown binding", request{"GET", "/jobs/bindings/nope", "", nil}, 404, problem.NotFound, "", `no binding "nope"`},
		{"delete unknown binding", request{"DELETE", "/jobs/bindings/nope", "", nil}, 404, problem.NotFound, "", `no binding "nope"`},
		{"binding with PUT", request{"PUT", "/jobs/bindings/nope", `{}`, nil}, 405, problem.MethodNotAllowed, "", "GET or DELETE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.do(t, tc.req)
			if resp.StatusCode != tc.status {
				t.Errorf("status = %d, want %d; body %s", resp.StatusCode, tc.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != problem.ContentType {
				t.Errorf("Content-Type = %q, want %q", ct, problem.ContentType)
			}
			var p problem.Details
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatalf("body is not a problem: %v: %s", err, body)
			}
			if p.Type != tc.kind.Type() || p.Status != tc.status || p.Field != tc.field {
				t.Errorf("problem type %q status %d field %q, want %q %d %q", p.Type, p.Status, p.Field, tc.kind.Type(), tc.status, tc.field)
			}
			if !strings.Contains(p.Detail, tc.detailHas) {
				t.Errorf("detail %q does not say %q", p.Detail, tc.detailHas)
			}
			assertNothingWritten(t, e)
		})
	}
}

// TestArgsSchemaErrors checks the errors member of a request whose args
// fail their declared schema in several places: one entry per place, with
// the schema's message and the JSON Pointer of the value in the body.
func TestArgsSchemaErrors(t *testing.T) {
	e := setup(t, false)
	resp, body := e.do(t, request{"POST", "/jobs", `{"function":"resize","args":{"url":"u","width":5000,"crop":{"x":"left"},"a/b":1}}`, nil})
	checkProblem(t, resp, body, problem.InvalidArgs)
	var p problem.Details
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	want := []problem.Error{
		{Detail: "additional properties 'a/b' not allowed", Pointer: "#/args"},
		{Detail: "got string, want integer", Pointer: "#/args/crop/x"},
		{Detail: "maximum: got 5,000, want 4,096", Pointer: "#/args/width"},
	}
	got := slices.SortedFunc(slices.Values(p.Errors), func(a, b problem.Error) int { return strings.Compare(a.Pointer, b.Pointer) })
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	assertNothingWritten(t, e)
}

// TestFunctionUnavailable checks the answer to a request for a declared
// function that cannot run in this install: under make run, which has no
// container runtime, a function with an image and no local binary.
func TestFunctionUnavailable(t *testing.T) {
	functions := catalog.New(true)
	if err := functions.Set(map[string]string{"resize": resizeDecl}); err != nil {
		t.Fatal(err)
	}
	rdb := testenv.Redis(t)
	sender := &recorder{}
	srv := httptest.NewServer(validating(t, false, api.New(api.Config{Store: store.New(rdb, store.Options{}), Sender: sender, Functions: functions})))
	t.Cleanup(srv.Close)
	resp, body := env{url: srv.URL}.do(t, request{"POST", "/jobs", `{"function":"resize","args":{"url":"u"}}`, nil})
	checkProblem(t, resp, body, problem.FunctionUnavailable)
	var p problem.Details
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if want := "make run has no container runtime; name a binary for it with local: in KJOBS_FUNCTIONS_FILE"; p.Field != "function" || !strings.Contains(p.Detail, want) {
		t.Errorf("problem field %q detail %q, want field function and a detail saying %q", p.Field, p.Detail, want)
	}
	if keys := rdb.Keys(context.Background(), "*").Val(); len(keys) != 0 || len(sender.sent()) != 0 {
		t.Errorf("the refused request wrote %v to Redis and sent %d events", keys, len(sender.sent()))
	}
}

// checkProblem checks that an answer is the problem document of kind.
func checkProblem(t *testing.T, resp *http.Response, body []byte, kind problem.Kind) {
	t.Helper()
	var p problem.Details
	if err := json.Unmarshal(body, &p); err != nil || resp.Header.Get("Content-Type") != problem.ContentType {
		t.Fatalf("not a problem: %v: %s", err, body)
	}
	if resp.StatusCode != kind.Status || p.Type != kind.Type() || p.Detail == "" {
		t.Errorf("%d %s, want a %d %s with a detail", resp.StatusCode, body, kind.Status, kind.Type())
	}
}

func assertNothingWritten(t *testing.T, e env) {
	t.Helper()
	if keys := e.rdb.Keys(context.Background(), "*").Val(); len(keys) != 0 {
		t.Errorf("bad input wrote to Redis: %v", keys)
	}
	if sent := e.sender.sent(); len(sent) != 0 {
		t.Errorf("bad input sent %d events", len(sent))
	}
	if list, err := e.schedules.List(context.Background()); err != nil || len(list) != 0 {
		t.Errorf("bad input left schedules: %v, %v", list, err)
	}
	if list, err := e.bindings.List(context.Background()); err != nil || len(list) != 0 {
		t.Errorf("bad input left bindings: %v, %v", list, err)
	}
}

func TestAuth(t *testing.T) {
	e := setup(t, true)
	tests := []struct {
		name   string
		req    request
		status int
	}{
		{"no token", request{"GET", "/jobs/stats", "", nil}, 401},
		{"wrong token", request{"GET", "/jobs/stats", "", map[string]string{"Authorization": "Bearer nope"}}, 401},
		{"token prefix", request{"GET", "/jobs/stats", "", map[string]string{"Authorization": "Bearer " + token[:4]}}, 401},
		{"basic auth", request{"GET", "/jobs/stats", "", map[string]string{"Authorization": "Basic " + token}}, 401},
		{"post without token", request{"POST", "/jobs", `{"function":"echo"}`, nil}, 401},
		{"schedule without token", request{"POST", "/jobs/schedule", `{"cron":"* * * * *","function":"echo"}`, nil}, 401},
		{"metrics without token", request{"GET", "/metrics", "", nil}, 401},
		{"pause without token", request{"POST", "/jobs/schedule/x/pause", "", nil}, 401},
		{"resume without token", request{"POST", "/jobs/schedule/x/resume", "", nil}, 401},
		{"valid token", request{"GET", "/jobs/stats", "", map[string]string{"Authorization": "Bearer " + token}}, 200},
		{"the other valid token", request{"GET", "/jobs/stats", "", map[string]string{"Authorization": "bearer other-token"}}, 200},
		{"metrics with a token", request{"GET", "/metrics", "", map[string]string{"Authorization": "Bearer " + token}}, 200},
		{"health needs none", request{"GET", "/healthz", "", nil}, 200},
		{"readiness needs none", request{"GET", "/readyz", "", nil}, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.do(t, tc.req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status == 401 {
				var p problem.Details
				if err := json.Unmarshal(body, &p); err != nil || p.Type != problem.Unauthorized.Type() {
					t.Errorf("401 body = %s, want an unauthorized problem", body)
				}
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				assertNothingWritten(t, e)
			}
		})
	}
}

func TestCreateJob(t *testing.T) {
	e := setup(t, false)
	resp, body := e.do(t, request{"POST", "/jobs", `{"function":"sleep","args":{"seconds":"1"}}`, nil})
	if resp.StatusCode != 202 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var j job.Job
	if err := json.Unmarshal(body, &j); err != nil {
		t.Fatal(err)
	}
	if got, want := resp.Header.Get("Location"), "/jobs/"+j.ID; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	if j.Status != job.Queued || j.Function != "sleep" || j.Args["seconds"] != "1" {
		t.Errorf("job = %+v", j)
	}
	sent := e.sender.sent()
	if len(sent) != 1 {
		t.Fatalf("%d events sent, want 1", len(sent))
	}
	if sent[0].ID() != j.ID || sent[0].Type() != event.TypeRequested || sent[0].Source() != event.SourceAPI {
		t.Errorf("event id %s type %s source %s; want the job's id, %s, %s", sent[0].ID(), sent[0].Type(), sent[0].Source(), event.TypeRequested, event.SourceAPI)
	}
	req, err := event.Request(sent[0])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(job.Request{Function: "sleep", Args: job.Args{"seconds": "1"}}, req); diff != "" {
		t.Errorf("event data (-want +got):\n%s", diff)
	}

	resp, body = e.do(t, request{"GET", "/jobs/" + j.ID, "", nil})
	var got job.Job
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 || got.ID != j.ID {
		t.Errorf("GET the job: %d %s", resp.StatusCode, body)
	}

	// No body asks for the default function.
	resp, body = e.do(t, request{"POST", "/jobs", "", nil})
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 202 || got.Function != job.DefaultFunction {
		t.Errorf("POST without a body: %d %s", resp.StatusCode, body)
	}

	resp, body = e.do(t, request{"GET", "/jobs/stats", "", nil})
	var st job.Stats
	if err := json.Unmarshal(body, &st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("stats: %d %s", resp.StatusCode, body)
	}
	if diff := cmp.Diff(job.Stats{Queued: 2}, st); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// TestCancelJob cancels through the API: 202 with the canceled job, twice,
// with one transition; 409 for a job that has ended otherwise.
func TestCancelJob(t *testing.T) {
	e := setup(t, false)
	st := store.New(e.rdb, store.Options{})
	resp, body := e.do(t, request{"POST", "/jobs", `{"function":"sleep","args":{"seconds":"1"}}`, nil})
	var j job.Job
	if err := json.Unmarshal(body, &j); err != nil || resp.StatusCode != 202 {
		t.Fatalf("POST /jobs: %d %s", resp.StatusCode, body)
	}
	for i := range 2 {
		resp, body = e.do(t, request{"POST", "/jobs/" + j.ID + "/cancel", "", nil})
		var got job.Job
		if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 202 || got.Status != job.Canceled {
			t.Errorf("cancel #%d: %d %s; want 202 and the job canceled", i+1, resp.StatusCode, body)
		}
	}
	stats, err := st.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(job.Stats{Canceled: 1}, stats); diff != "" {
		t.Errorf("stats after two cancels (-want +got):\n%s", diff)
	}

	resp, body = e.do(t, request{"POST", "/jobs", `{"function":"echo"}`, nil})
	if err := json.Unmarshal(body, &j); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Start(context.Background(), j.ID, job.Attempt{Attempt: 1, Outcome: job.OutcomeRunning}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Finish(context.Background(), j.ID, job.Attempt{Attempt: 1, Outcome: job.OutcomeSucceeded}); err != nil {
		t.Fatal(err)
	}
	resp, body = e.do(t, request{"POST", "/jobs/" + j.ID + "/cancel", "", nil})
	var p problem.Details
	if err := json.Unmarshal(body, &p); err != nil || resp.StatusCode != 409 || !strings.HasSuffix(p.Type, "/job-finished") || !strings.Contains(p.Detail, "succeeded") {
		t.Errorf("cancel of a succeeded job: %d %s; want 409 job-finished", resp.StatusCode, body)
	}
}

// TestLimitsAndLabels checks that a job's timeout and labels are recorded,
// travel in its event, and select it in GET /jobs?label=.
func TestLimitsAndLabels(t *testing.T) {
	e := setup(t, false)
	post := func(body string) job.Job {
		t.Helper()
		resp, b := e.do(t, request{"POST", "/jobs", body, nil})
		var j job.Job
		if err := json.Unmarshal(b, &j); err != nil || resp.StatusCode != 202 {
			t.Fatalf("POST %s: %d %s", body, resp.StatusCode, b)
		}
		return j
	}
	a := post(`{"function":"echo","timeout":"2s","labels":{"team":"data","example.com/tier":"gold"}}`)
	b := post(`{"function":"echo","labels":{"team":"data"}}`)
	post(`{"function":"echo","labels":{"team":"web"}}`)

	resp, body := e.do(t, request{"GET", "/jobs/" + a.ID, "", nil})
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET the job: %d %s", resp.StatusCode, body)
	}
	if diff := cmp.Diff(map[string]any{"team": "data", "example.com/tier": "gold"}, raw["labels"]); raw["timeout"] != "2s" || diff != "" {
		t.Errorf("GET the job: timeout %v, labels (-want +got):\n%s", raw["timeout"], diff)
	}
	req, err := event.Request(e.sender.sent()[0])
	if err != nil {
		t.Fatal(err)
	}
	want := job.Request{Function: "echo", Timeout: job.Duration(2 * time.Second), Labels: map[string]string{"team": "data", "example.com/tier": "gold"}}
	if diff := cmp.Diff(want, req); diff != "" {
		t.Errorf("event data (-want +got):\n%s", diff)
	}

	for query, want := range map[string][]string{
		"label=team=data": {b.ID, a.ID},
		"label=team=data&label=example.com/tier=gold": {a.ID},
		"label=team=data&status=queued&limit=1":       {b.ID},
		"label=team=nobody":                           nil,
	} {
		resp, body := e.do(t, request{"GET", "/jobs?" + query, "", nil})
		var page store.Page
		if err := json.Unmarshal(body, &page); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /jobs?%s: %d %s", query, resp.StatusCode, body)
		}
		var got []string
		for _, j := range page.Jobs {
			got = append(got, j.ID)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("GET /jobs?%s (-want +got):\n%s", query, diff)
		}
	}
}

func TestIdempotencyKey(t *testing.T) {
	e := setup(t, false)
	var ids []string
	for range 3 {
		resp, body := e.do(t, request{"POST", "/jobs", `{"function":"echo"}`, map[string]string{"Idempotency-Key": "order-42"}})
		var j job.Job
		if err := json.Unmarshal(body, &j); err != nil || resp.StatusCode != 202 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		ids = append(ids, j.ID)
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Errorf("a repeated Idempotency-Key made jobs %v, want one", ids)
	}
	if n := len(e.sender.sent()); n != 1 {
		t.Errorf("%d events sent for one key, want 1", n)
	}
}

func TestIdempotencyKeyReused(t *testing.T) {
	e := setup(t, false)
	key := map[string]string{"Idempotency-Key": "order-43"}
	if resp, body := e.do(t, request{"POST", "/jobs", `{"function":"echo","args":{"a":"1"}}`, key}); resp.StatusCode != 202 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	for _, body := range []string{`{"function":"echo","args":{"a":"2"}}`, `{"function":"sleep","args":{"seconds":"1"}}`, `{"function":"echo"}`} {
		resp, got := e.do(t, request{"POST", "/jobs", body, key})
		checkProblem(t, resp, got, problem.IdempotencyKeyReused)
	}
	if n := len(e.sender.sent()); n != 1 {
		t.Errorf("%d events sent, want 1", n)
	}
}

// TestSendOutcomeUnknown checks that a send that may have reached the
// Broker keeps the job and its key: the retry gets the same job, and the
// dispatcher's sweep re-sends the event if it was lost.
func TestSendOutcomeUnknown(t *testing.T) {
	e := setup(t, false)
	e.sender.fail = context.DeadlineExceeded
	key := map[string]string{"Idempotency-Key": "k"}
	resp, body := e.do(t, request{"POST", "/jobs", `{"function":"echo"}`, key})
	var first job.Job
	if err := json.Unmarshal(body, &first); err != nil || resp.StatusCode != 202 || resp.Header.Get("Location") != "/jobs/"+first.ID {
		t.Fatalf("status %d Location %q: %s; want 202 with the job", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	e.sender.fail = nil
	resp, body = e.do(t, request{"POST", "/jobs", `{"function":"echo"}`, key})
	var again job.Job
	if err := json.Unmarshal(body, &again); err != nil || resp.StatusCode != 202 || again.ID != first.ID || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry with the same key: %d %s; want 202 replaying job %s", resp.StatusCode, body, first.ID)
	}
}

func TestSendFailureLeavesNothing(t *testing.T) {
	e := setup(t, false)
	e.sender.fail = fmt.Errorf("dial tcp: connection refused: %w", event.ErrNotSent)
	resp, body := e.do(t, request{"POST", "/jobs", `{"function":"echo"}`, map[string]string{"Idempotency-Key": "k"}})
	if resp.StatusCode != 503 || resp.Header.Get("Location") != "" {
		t.Errorf("status %d Location %q: %s; want 503 without Location", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	e.sender.fail = nil
	if keys := e.rdb.Keys(context.Background(), "kjobs:{kjobs}:job:*").Val(); len(keys) != 0 {
		t.Errorf("a job whose event was not sent is still recorded: %v", keys)
	}
	resp, body = e.do(t, request{"POST", "/jobs", `{"function":"echo"}`, map[string]string{"Idempotency-Key": "k"}})
	if resp.StatusCode != 202 || len(e.sender.sent()) != 1 {
		t.Errorf("retry with the same key: %d %s, %d events; want 202 and the event sent", resp.StatusCode, body, len(e.sender.sent()))
	}
}

func TestListJobs(t *testing.T) {
	e := setup(t, false)
	for range 5 {
		if resp, body := e.do(t, request{"POST", "/jobs", `{"function":"echo"}`, nil}); resp.StatusCode != 202 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	var seen []string
	cursor := ""
	for {
		_, body := e.do(t, request{"GET", "/jobs?limit=2&status=queued&cursor=" + cursor, "", nil})
		var page store.Page
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		for _, j := range page.Jobs {
			seen = append(seen, j.ID)
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if len(seen) != 5 {
		t.Errorf("paged through %d jobs, want 5: %v", len(seen), seen)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i-1] < seen[i] {
			t.Errorf("not newest first: %v", seen)
		}
	}
}

func TestSchedules(t *testing.T) {
	e := setup(t, false)
	resp, body := e.do(t, request{"POST", "/jobs/schedule", `{"cron":"0 9 * * 1-5","timezone":"Europe/Paris","function":"echo","args":{"k":"v"},"name":"weekday report"}`, nil})
	if resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var sc schedule.Schedule
	if err := json.Unmarshal(body, &sc); err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Location") != "/jobs/schedule/"+sc.ID {
		t.Errorf("Location = %q", resp.Header.Get("Location"))
	}
	if len(sc.NextRuns) != 5 {
		t.Fatalf("nextRuns = %v, want 5", sc.NextRuns)
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	for _, r := range sc.NextRuns {
		if local := r.In(paris); local.Hour() != 9 || local.Weekday() == time.Saturday || local.Weekday() == time.Sunday {
			t.Errorf("next run %v is not 09:00 on a weekday in Paris", local)
		}
	}
	_, body = e.do(t, request{"GET", "/jobs/schedule", "", nil})
	var list struct{ Schedules []schedule.Schedule }
	if err := json.Unmarshal(body, &list); err != nil || len(list.Schedules) != 1 || list.Schedules[0].Name != "weekday report" {
		t.Errorf("list = %s", body)
	}
	if resp, body := e.do(t, request{"GET", "/jobs/schedule/" + sc.ID, "", nil}); resp.StatusCode != 200 {
		t.Errorf("get: %d %s", resp.StatusCode, body)
	}
	if resp, body := e.do(t, request{"DELETE", "/jobs/schedule/" + sc.ID, "", nil}); resp.StatusCode != 204 {
		t.Errorf("delete: %d %s", resp.StatusCode, body)
	}
	if resp, _ := e.do(t, request{"GET", "/jobs/schedule/" + sc.ID, "", nil}); resp.StatusCode != 404 {
		t.Errorf("get after delete: %d, want 404", resp.StatusCode)
	}
}

// TestBindings creates, lists, shows and deletes a binding through the API
// over the local store, and a second one of the same name.
func TestBindings(t *testing.T) {
	e := setup(t, false)
	body := `{"name":"uploads","filters":[{"prefix":{"type":"com.amazonaws.s3."}}],"function":"echo","args":{"k":"v"}}`
	resp, got := e.do(t, request{"POST", "/jobs/bindings", body, nil})
	if resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, got)
	}
	if loc := resp.Header.Get("Location"); loc != "/jobs/bindings/uploads" {
		t.Errorf("Location = %q", loc)
	}
	var created binding.Binding
	if err := json.Unmarshal(got, &created); err != nil {
		t.Fatal(err)
	}
	want, err := binding.Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want.CreatedAt = created.CreatedAt
	if diff := cmp.Diff(want, created); diff != "" || created.CreatedAt.IsZero() {
		t.Errorf("created (-want +got):\n%s", diff)
	}

	resp, got = e.do(t, request{"POST", "/jobs/bindings", body, nil})
	checkProblem(t, resp, got, problem.AlreadyExists)

	_, got = e.do(t, request{"GET", "/jobs/bindings", "", nil})
	var list struct{ Bindings []binding.Binding }
	if err := json.Unmarshal(got, &list); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]binding.Binding{created}, list.Bindings); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	resp, got = e.do(t, request{"GET", "/jobs/bindings/uploads", "", nil})
	var shown binding.Binding
	if err := json.Unmarshal(got, &shown); err != nil || resp.StatusCode != 200 {
		t.Fatalf("get: %d %s", resp.StatusCode, got)
	}
	if diff := cmp.Diff(created, shown); diff != "" {
		t.Errorf("get (-want +got):\n%s", diff)
	}
	if resp, got := e.do(t, request{"DELETE", "/jobs/bindings/uploads", "", nil}); resp.StatusCode != 204 {
		t.Errorf("delete: %d %s", resp.StatusCode, got)
	}
	resp, got = e.do(t, request{"GET", "/jobs/bindings/uploads", "", nil})
	checkProblem(t, resp, got, problem.NotFound)
	if _, got := e.do(t, request{"GET", "/jobs/bindings", "", nil}); string(got) != `{"bindings":[]}`+"\n" {
		t.Errorf("list after delete = %s", got)
	}
}

// TestPauseResume pauses and resumes a schedule through the API and checks
// what each answer, GET and the list show, and the mark the dispatcher goes
// by.
func TestPauseResume(t *testing.T) {
	e := setup(t, false)
	ctx := context.Background()
	st := store.New(e.rdb, store.Options{})
	var sc schedule.Schedule
	if resp, body := e.do(t, request{"POST", "/jobs/schedule", `{"cron":"0 9 * * *","function":"echo"}`, nil}); resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	} else if err := json.Unmarshal(body, &sc); err != nil {
		t.Fatal(err)
	}
	if sc.Paused || sc.Skipped != 0 {
		t.Errorf("a new schedule has paused %v, skipped %d; want false, 0", sc.Paused, sc.Skipped)
	}
	// A tick of the schedule as its PingSource sends it: it does not say
	// paused, as when Knative's adapter has not caught up yet.
	skip := func(tick string) bool {
		t.Helper()
		skip, err := st.DropPausedTick(ctx, tick, sc.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		return skip
	}

	for _, step := range []struct {
		path        string
		wantPaused  bool
		tick        string
		wantSkipped int64
	}{
		{"/pause", true, "tick-1", 1},
		// Pausing a paused schedule changes nothing and answers the same.
		{"/pause", true, "tick-2", 2},
		{"/resume", false, "tick-3", 2},
		{"/resume", false, "tick-4", 2},
	} {
		resp, body := e.do(t, request{"POST", "/jobs/schedule/" + sc.ID + step.path, "", nil})
		if resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d %s", step.path, resp.StatusCode, body)
		}
		var got schedule.Schedule
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		if got.Paused != step.wantPaused || got.ID != sc.ID || len(got.NextRuns) != 5 {
			t.Errorf("POST %s = %s, want the schedule with paused %v and its next runs", step.path, body, step.wantPaused)
		}
		if skipped := skip(step.tick); skipped != step.wantPaused {
			t.Errorf("after POST %s, a tick is skipped: %v, want %v", step.path, skipped, step.wantPaused)
		}
		var shown schedule.Schedule
		if _, body := e.do(t, request{"GET", "/jobs/schedule/" + sc.ID, "", nil}); json.Unmarshal(body, &shown) != nil ||
			shown.Paused != step.wantPaused || shown.Skipped != step.wantSkipped {
			t.Errorf("GET after POST %s = %s, want paused %v, skipped %d", step.path, body, step.wantPaused, step.wantSkipped)
		}
		var list struct{ Schedules []schedule.Schedule }
		if _, body := e.do(t, request{"GET", "/jobs/schedule", "", nil}); json.Unmarshal(body, &list) != nil || len(list.Schedules) != 1 ||
			list.Schedules[0].Paused != step.wantPaused || list.Schedules[0].Skipped != step.wantSkipped {
			t.Errorf("list after POST %s = %s, want paused %v, skipped %d", step.path, body, step.wantPaused, step.wantSkipped)
		}
	}

	if resp, body := e.do(t, request{"DELETE", "/jobs/schedule/" + sc.ID, "", nil}); resp.StatusCode != 204 {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
	if got, err := st.TicksSkipped(ctx, sc.ID); err != nil || got[0] != 0 {
		t.Errorf("Skipped after delete = %v, %v; want [0]", got, err)
	}
	if resp, body := e.do(t, request{"POST", "/jobs/schedule/" + sc.ID + "/pause", "", nil}); resp.StatusCode != 404 {
		t.Errorf("pause after delete: %d %s, want 404", resp.StatusCode, body)
	}
}

// discard is an event.Sender that drops events, for benchmarks.
type discard struct{}

func (discard) Send(context.Context, cloudevents.Event) error { return nil }
