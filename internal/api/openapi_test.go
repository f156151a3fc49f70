package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/kjobs/kjobs/internal/api"
	"github.com/kjobs/kjobs/internal/problem"
)

// openAPI is the document, loaded once for every test of the package.
type openAPI struct {
	raw   []byte
	model *v3.Document
	// secured checks bearer tokens as the document asks; open does not,
	// for servers whose auth is off, as the local stack's on loopback.
	secured, open validator.Validator
}

var loadOpenAPI = sync.OnceValues(func() (*openAPI, error) {
	raw, err := os.ReadFile("openapi.json")
	if err != nil {
		return nil, err
	}
	doc, err := libopenapi.NewDocument(raw)
	if err != nil {
		return nil, err
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		return nil, fmt.Errorf("building the model: %w", err)
	}
	secured, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		return nil, fmt.Errorf("building the validator: %v", errs)
	}
	open, errs := validator.NewValidator(doc, config.WithFormatAssertions(), config.WithoutSecurityValidation())
	if len(errs) > 0 {
		return nil, fmt.Errorf("building the validator: %v", errs)
	}
	return &openAPI{raw: raw, model: &model.Model, secured: secured, open: open}, nil
})

func mustOpenAPI(t testing.TB) *openAPI {
	t.Helper()
	o, err := loadOpenAPI()
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return o
}

// TestOpenAPIDocument checks that the document is a valid OpenAPI 3.1
// document, by the OpenAPI schema.
func TestOpenAPIDocument(t *testing.T) {
	o := mustOpenAPI(t)
	if ok, errs := o.open.ValidateDocument(); !ok {
		t.Errorf("openapi.json is not a valid OpenAPI document:\n%s", describe(errs))
	}
	if got := o.model.Version; got != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", got)
	}
}

// TestOpenAPIRoutes checks that the document has an operation for every
// route of the API and none for a route the API does not have.
func TestOpenAPIRoutes(t *testing.T) {
	o := mustOpenAPI(t)
	var documented []string
	for path, item := range o.model.Paths.PathItems.FromOldest() {
		for method := range item.GetOperations().FromOldest() {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	// The mux's patterns and OpenAPI's paths write a path parameter alike,
	// as {name}.
	routes := api.New(api.Config{}).Routes()
	if diff := cmp.Diff(slices.Sorted(slices.Values(routes)), slices.Sorted(slices.Values(documented))); diff != "" {
		t.Errorf("routes (-served +documented):\n%s", diff)
	}
}

// TestOpenAPIProblems checks that the document describes each kind of
// problem with the type, title and status the API answers with.
func TestOpenAPIProblems(t *testing.T) {
	o := mustOpenAPI(t)
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Const any `json:"const"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(o.raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []problem.Kind{
		problem.MalformedJSON, problem.InvalidField, problem.UnknownFunction, problem.InvalidArgs,
		problem.FunctionUnavailable, problem.InvalidCron, problem.InvalidTimezone, problem.InvalidFilter,
		problem.InvalidQuery, problem.InvalidCursor, problem.InvalidHeader, problem.IdempotencyKeyReused,
		problem.AlreadyExists, problem.JobFinished, problem.Unauthorized, problem.NotFound,
		problem.MethodNotAllowed, problem.BodyTooLarge, problem.UnsupportedMediaType, problem.Unavailable,
		problem.Internal, problem.InvalidParameter, problem.LogGone,
		problem.LogUnavailable,
	} {
		s, ok := doc.Components.Schemas["problem-"+k.Slug]
		if !ok {
			t.Errorf("no schema problem-%s", k.Slug)
			continue
		}
		got := map[string]any{"type": s.Properties["type"].Const, "title": s.Properties["title"].Const, "status": s.Properties["status"].Const}
		want := map[string]any{"type": k.Type(), "title": k.Title, "status": float64(k.Status)}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("schema problem-%s (-want +got):\n%s", k.Slug, diff)
		}
	}
}

// TestOpenAPIServed checks GET /openapi.json: the document, without a
// token, and 304 for the ETag it gave.
func TestOpenAPIServed(t *testing.T) {
	o := mustOpenAPI(t)
	e := setup(t, true)
	resp, body := e.do(t, request{"GET", "/openapi.json", "", nil})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || !bytes.Equal(body, o.raw) {
		t.Fatalf("GET /openapi.json: %d %s, %d bytes; want 200 application/json with openapi.json", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if resp, body := e.do(t, request{"GET", "/openapi.json", "", map[string]string{"If-None-Match": etag}}); resp.StatusCode != 304 || len(body) != 0 {
		t.Errorf("GET with If-None-Match: %d %s, want 304 without a body", resp.StatusCode, body)
	}
}

// validating serves h and checks each exchange against the document,
// failing t on a mismatch: a request the document describes must get an
// answer that it describes for the operation; one it does not (the bad
// input that tests send on purpose) must get a 4xx problem that it
// describes for the operation, or a not-found or method-not-allowed
// problem where it has no such operation. The answer is passed through as
// it is written, so that a streamed answer still streams.
func validating(t *testing.T, secured bool, h http.Handler) http.Handler {
	o := mustOpenAPI(t)
	v := o.open
	if secured {
		v = o.secured
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("%s %s: reading the request: %v", r.Method, r.URL, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		vr := r.Clone(r.Context())
		vr.Body = io.NopCloser(bytes.NewReader(body))
		valid, reqErrs := v.ValidateHttpRequestSync(vr)

		tw := &tee{ResponseWriter: w, header: w.Header()}
		h.ServeHTTP(tw, r)
		if tw.code == 0 {
			// The handler wrote nothing: net/http answers 200 with the
			// headers as they are.
			tw.code, tw.sent = http.StatusOK, tw.header.Clone()
		}
		resp := &http.Response{
			StatusCode: tw.code, Header: tw.sent, Request: r,
			Body: io.NopCloser(bytes.NewReader(tw.body.Bytes())), ContentLength: int64(tw.body.Len()),
		}
		vr.Body = io.NopCloser(bytes.NewReader(body))
		ok, respErrs := v.ValidateHttpResponse(vr, resp)
		exchange := fmt.Sprintf("%s %s → %d %s", r.Method, r.URL.RequestURI(), tw.code, shown(tw.sent, tw.body.Bytes()))
		switch {
		case valid && !ok:
			t.Errorf("%s: the answer is not the document's:\n%s", exchange, describe(respErrs))
		case valid:
		case tw.code < 400 || tw.code > 499:
			t.Errorf("%s: the document says the request is invalid, but the answer is not a 4xx:\n%s", exchange, describe(reqErrs))
		case !ok && slices.ContainsFunc(respErrs, func(e *verrors.ValidationError) bool { return e.IsPathMissingError() || e.IsOperationMissingError() }):
			checkUndocumentedRoute(t, o, exchange, resp, tw.body.Bytes())
		case !ok:
			t.Errorf("%s: an invalid request's answer is not the document's:\n%s\nthe request:\n%s", exchange, describe(respErrs), describe(reqErrs))
		}
	})
}

// checkUndocumentedRoute checks the answer to a request for a path or
// method that the document has no operation for: the API's not-found or
// method-not-allowed problem.
func checkUndocumentedRoute(t *testing.T, o *openAPI, exchange string, resp *http.Response, body []byte) {
	kind := map[int]problem.Kind{404: problem.NotFound, 405: problem.MethodNotAllowed}[resp.StatusCode]
	if kind.Slug == "" || resp.Header.Get("Content-Type") != problem.ContentType {
		t.Errorf("%s: a route the document does not have, answered other than a 404 or 405 problem", exchange)
		return
	}
	if kind == problem.MethodNotAllowed && resp.Header.Get("Allow") == "" {
		t.Errorf("%s: 405 without Allow", exchange)
	}
	schema, ok := o.model.Components.Schemas.Get("problem-" + kind.Slug)
	if !ok {
		t.Errorf("%s: the document has no schema problem-%s", exchange, kind.Slug)
		return
	}
	if ok, errs := schema_validation.NewSchemaValidator().ValidateSchemaBytes(schema.Schema(), body); !ok {
		t.Errorf("%s: not the document's problem-%s:\n%s", exchange, kind.Slug, describe(errs))
	}
}

// tee passes an answer through to the client and keeps a copy of it, with
// the headers as they were sent, to be validated once it is complete.
type tee struct {
	http.ResponseWriter
	header http.Header
	sent   http.Header
	code   int
	body   bytes.Buffer
}

func (w *tee) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
		w.sent = w.header.Clone()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *tee) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer, to
// flush a stream or set its deadline.
func (w *tee) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush keeps the writer an http.Flusher for handlers that test for one.
func (w *tee) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }

func describe[E interface{ Error() string }](errs []E) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "\t%s\n", e.Error())
	}
	return b.String()
}

// shown is a body as a failure shows it: JSON, cut short, or its size
// and type.
func shown(h http.Header, body []byte) string {
	switch {
	case !strings.Contains(h.Get("Content-Type"), "json") || h.Get("Content-Encoding") != "":
		return fmt.Sprintf("(%d bytes of %s)", len(body), h.Get("Content-Type"))
	case len(body) > 300:
		return string(body[:300]) + "…"
	}
	return string(body)
}
