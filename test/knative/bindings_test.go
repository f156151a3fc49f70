package knative

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"knative.dev/eventing/pkg/adapter/apiserver/events"
	eventingclient "knative.dev/eventing/pkg/client/clientset/versioned"

	"github.com/kjobs/kjobs/internal/binding/trigger"
	kevent "github.com/kjobs/kjobs/internal/event"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/store"
	"github.com/kjobs/kjobs/internal/testenv"
	"github.com/kjobs/kjobs/processor/function"
)

// testEvent reads an event of test/testdata.
func testEvent(t *testing.T, name string) cloudevents.Event {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var e cloudevents.Event
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("testdata/%s: %v", name, err)
	}
	return e
}

// TestAPIServerSourceShape checks that the ApiServerSource-shaped event of
// testdata has the attributes that Knative's own adapter gives the same
// object, so that the bindings tested with it select what a real
// ApiServerSource sends.
func TestAPIServerSourceShape(t *testing.T) {
	e := testEvent(t, "apiserversource-add.json")
	var obj map[string]any
	if err := json.Unmarshal(e.Data(), &obj); err != nil {
		t.Fatal(err)
	}
	_, want, err := events.MakeAddEvent(e.Source(), "configmaps", &unstructured.Unstructured{Object: obj}, false)
	if err != nil {
		t.Fatal(err)
	}
	attrs := func(e cloudevents.Event) map[string]any {
		m := map[string]any{"type": e.Type(), "source": e.Source(), "subject": e.Subject(), "datacontenttype": e.DataContentType()}
		for k, v := range e.Extensions() {
			m[k] = fmt.Sprint(v)
		}
		return m
	}
	if diff := cmp.Diff(attrs(want), attrs(e)); diff != "" {
		t.Errorf("testdata/apiserversource-add.json differs from what the adapter sends (-adapter +testdata):\n%s", diff)
	}
}

// sendToBroker posts e to the Broker's ingress in structured mode, as a
// source would, and fails unless the Broker took it.
func (s *stack) sendToBroker(ctx context.Context, e cloudevents.Event) {
	s.t.Helper()
	body, err := json.Marshal(e)
	if err != nil {
		s.t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.eventing.BrokerURL(s.ns, brokerName), bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	resp, err := direct.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		s.t.Fatalf("the Broker answered %d to event %s", resp.StatusCode, e.ID())
	}
}

// bind creates a binding through the API and waits until its Trigger is
// Ready and the channel delivers to it.
func (s *stack) bind(ctx context.Context, body string) string {
	s.t.Helper()
	var b struct{ Name string }
	if status, raw := s.api.do(ctx, http.MethodPost, "/jobs/bindings", body, &b); status != http.StatusCreated {
		s.t.Fatalf("POST /jobs/bindings %s = %d\n%s", body, status, raw)
	}
	testenv.WaitTrigger(s.t, s.cfg, s.ns, brokerName, trigger.Name(b.Name))
	return b.Name
}

// unbind deletes a binding through the API and waits until the Broker's
// channel no longer delivers to its Trigger.
func (s *stack) unbind(ctx context.Context, name string) {
	s.t.Helper()
	if status, raw := s.api.do(ctx, http.MethodDelete, "/jobs/bindings/"+name, "", nil); status != http.StatusNoContent {
		s.t.Fatalf("DELETE /jobs/bindings/%s = %d\n%s", name, status, raw)
	}
	cs, err := eventingclient.NewForConfig(s.cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	path := "/" + trigger.Name(name) + "/"
	for {
		imcs, err := cs.MessagingV1().InMemoryChannels(s.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			s.t.Fatal(err)
		}
		subscribed := false
		for _, imc := range imcs.Items {
			for _, sub := range imc.Spec.Subscribers {
				subscribed = subscribed || sub.SubscriberURI != nil && strings.Contains(sub.SubscriberURI.Path, path)
			}
		}
		if !subscribed {
			return
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("the channel still delivers to the Trigger of deleted binding %s", name)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// boundJobs lists GET /jobs?binding=name.
func (s *stack) boundJobs(ctx context.Context, name string) []job.Job {
	s.t.Helper()
	var page store.Page
	if status, raw := s.api.do(ctx, http.MethodGet, "/jobs?binding="+name, "", &page); status != http.StatusOK {
		s.t.Fatalf("GET /jobs?binding=%s = %d\n%s", name, status, raw)
	}
	return page.Jobs
}

// waitEvent waits until the job of an event that binding selected has
// succeeded; it exists only once the Broker delivered the event.
func (s *stack) waitEvent(ctx context.Context, binding string, e cloudevents.Event) job.Job {
	s.t.Helper()
	id := kevent.JobID(binding, e.Source(), e.ID())
	for {
		if status, _, err := s.api.try(ctx, http.MethodGet, "/jobs/"+id, ""); err == nil && status == http.StatusOK {
			break
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("no job for event %s of binding %s", e.ID(), binding)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return s.api.waitFinished(ctx, id)
}

// TestBindingsThroughBroker sends events shaped as an ApiServerSource and a
// GitHub push send them to the real Broker: each runs its binding's
// function once, however often it is sent, with the whole event in its
// Job; an event no binding selects runs nothing; a deleted binding selects
// nothing more.
func TestBindingsThroughBroker(t *testing.T) {
	s := newStack(t, options{})
	ctx := timeout(t, 3*time.Minute)
	configMaps := s.bind(ctx, `{"name":"configmaps","filter":{"type":"dev.knative.apiserver.resource.add","kind":"ConfigMap"},"function":"echo"}`)
	pushes := s.bind(ctx, `{"name":"pushes","filters":[{"exact":{"type":"com.github.push"}},{"prefix":{"subject":"refs/heads/"}}],"function":"echo","args":{"pipeline":"docs"}}`)

	added := testEvent(t, "apiserversource-add.json")
	push := testEvent(t, "github-push.json")
	// Selected by no binding: a Secret added, and a tag pushed.
	secret := added.Clone()
	secret.SetID("a-secret")
	secret.SetExtension("kind", "Secret")
	tag := push.Clone()
	tag.SetID("a-tag")
	tag.SetSubject("refs/tags/v1.0.0")
	s.sendToBroker(ctx, secret)
	s.sendToBroker(ctx, tag)
	for range 5 {
		s.sendToBroker(ctx, added)
	}
	s.sendToBroker(ctx, push)

	for _, tc := range []struct {
		binding string
		e       cloudevents.Event
		args    job.Args
	}{
		{configMaps, added, job.Args{}},
		{pushes, push, job.Args{"pipeline": "docs"}},
	} {
		j := s.waitEvent(ctx, tc.binding, tc.e)
		if j.Status != job.Succeeded || len(j.Attempts) != 1 || j.Function != "echo" || !cmp.Equal(j.Args, tc.args) {
			t.Errorf("job of %s: %s with args %v after %d attempts; want echo with %v, succeeded after 1", tc.binding, j.Status, j.Args, len(j.Attempts), tc.args)
		}
		want := job.EventRef{Source: tc.e.Source(), ID: tc.e.ID(), Type: tc.e.Type()}
		if j.Binding != tc.binding || j.Event == nil || *j.Event != want {
			t.Errorf("job names binding %q, event %+v; want %s, %+v", j.Binding, j.Event, tc.binding, want)
		}
		// The function gets the whole event: in its Job's environment.
		jobs := s.jobs(ctx, j.ID)
		if len(jobs) != 1 {
			t.Fatalf("%d Jobs for the job of %s, want 1", len(jobs), tc.binding)
		}
		var got cloudevents.Event
		for _, env := range jobs[0].Spec.Template.Spec.Containers[0].Env {
			if env.Name == function.EnvEvent {
				if err := json.Unmarshal([]byte(env.Value), &got); err != nil {
					t.Fatalf("%s of the Job: %v", function.EnvEvent, err)
				}
			}
		}
		if got.ID() != tc.e.ID() || got.Source() != tc.e.Source() || got.Subject() != tc.e.Subject() || !bytes.Equal(compact(t, got.Data()), compact(t, tc.e.Data())) {
			t.Errorf("the Job's %s is event %q from %q, subject %q; want the event sent", function.EnvEvent, got.ID(), got.Source(), got.Subject())
		}
	}

	s.unbind(ctx, pushes)
	later := push.Clone()
	later.SetID("after-the-delete")
	s.sendToBroker(ctx, later)
	// The channel fans events out concurrently, so a sentinel does not
	// order them: the deliveries answered tell when everything sent has
	// been delivered, and that nothing else was.
	sentinel := added.Clone()
	sentinel.SetID("sentinel")
	s.sendToBroker(ctx, sentinel)
	s.waitEvent(ctx, configMaps, sentinel)
	s.waitDeliveries(ctx, "binding", http.StatusOK, 7)
	time.Sleep(time.Second)
	if n := s.deliveries(ctx, "binding", http.StatusOK); n != 7 {
		t.Errorf("%d deliveries on the bindings' routes, want 7: 5 of one event, a push and the sentinel", n)
	}
	if n := len(s.boundJobs(ctx, configMaps)); n != 2 {
		t.Errorf("GET /jobs?binding=%s lists %d jobs, want 2", configMaps, n)
	}
	if n := len(s.boundJobs(ctx, pushes)); n != 1 {
		t.Errorf("GET /jobs?binding=%s lists %d jobs, want 1: none after its deletion", pushes, n)
	}
	if st := s.api.stats(ctx); st != (job.Stats{Succeeded: 3}) {
		t.Errorf("stats %+v, want 3 succeeded and nothing else", st)
	}
}

// compact returns JSON without insignificant space, to compare event data
// that went through encoders.
func compact(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
	return b.Bytes()
}

// BenchmarkBoundEventToJob measures what BenchmarkIngressToJob measures for
// kjobs' own events, for an event of another source that a binding
// selects: from the Broker's ingress taking it to its Job existing. The
// difference is the binding's Trigger and the job recorded from the event.
func BenchmarkBoundEventToJob(b *testing.B) {
	pool := testenv.NewPool()
	s := newStack(b, options{functions: map[string]string{"sleep": testenv.OnPool(pool)}})
	ctx := timeout(b, 30*time.Minute)
	name := s.bind(ctx, `{"name":"uploads","filter":{"type":"com.amazonaws.s3.object-created"},"function":"sleep","args":{"seconds":20}}`)
	w := s.watchKjobsJobs(ctx)
	url := s.eventing.BrokerURL(s.ns, brokerName)
	var durations []time.Duration
	begin := time.Now()
	for n := 0; b.Loop(); n++ {
		e := event{id: fmt.Sprintf("photos/%d#%d", n, time.Now().UnixNano()), typ: "com.amazonaws.s3.object-created", source: "arn:aws:s3:::photos", data: []byte(`{"key":"cat.png"}`)}
		id := kevent.JobID(name, e.source, e.id)
		t0 := time.Now()
		if status, body := e.post(b, ctx, url); status != http.StatusAccepted {
			b.Fatalf("the ingress answered %d, want 202: %s", status, body)
		}
		waitCreated(b, ctx, w, id)
		durations = append(durations, time.Since(t0))
	}
	report(b, durations, time.Since(begin))
}
