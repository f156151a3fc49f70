package trigger_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	eventingclient "knative.dev/eventing/pkg/client/clientset/versioned"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"

	"github.com/kjobs/kjobs/internal/api"
	"github.com/kjobs/kjobs/internal/binding"
	"github.com/kjobs/kjobs/internal/binding/local"
	"github.com/kjobs/kjobs/internal/binding/trigger"
	"github.com/kjobs/kjobs/internal/problem"
	localschedule "github.com/kjobs/kjobs/internal/schedule/local"
	"github.com/kjobs/kjobs/internal/store"
	"github.com/kjobs/kjobs/internal/testenv"
)

const broker = "kjobs"

// setup returns a namespace of the test's own, an admin eventing client
// and a Store of Triggers there delivering to dispatcher.
func setup(t *testing.T, dispatcher string) (string, *rest.Config, eventingclient.Interface, *trigger.Store) {
	t.Helper()
	cfg := testenv.Kube(t)
	ns := testenv.Namespace(t, cfg, nil)
	ec, err := eventingclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	uri, err := apis.ParseURL(dispatcher)
	if err != nil {
		t.Fatal(err)
	}
	s := trigger.New(ec, trigger.Config{Namespace: ns, Broker: broker, Dispatcher: duckv1.Destination{URI: uri}})
	return ns, cfg, ec, s
}

// kubectlBindings lists the bindings as `kubectl get triggers -l
// kjobs.dev/binding` shows them, rebuilt from each Trigger.
func kubectlBindings(t *testing.T, ns string) []binding.Binding {
	t.Helper()
	out, err := testenv.Kubectl(t, "get", "triggers.eventing.knative.dev", "-n", ns, "-l", binding.LabelKey, "-o", "json")
	if err != nil {
		t.Fatalf("kubectl: %v\n%s", err, out)
	}
	var list eventingv1.TriggerList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("kubectl's output: %v\n%s", err, out)
	}
	bs := []binding.Binding{}
	for i := range list.Items {
		b, err := trigger.FromTrigger(&list.Items[i])
		if err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
	}
	binding.Sort(bs)
	return bs
}

func decode(t *testing.T, body string) binding.Binding {
	t.Helper()
	b, err := binding.Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStore creates, lists, shows and deletes bindings through the Store
// and checks each step against kubectl's view of the cluster.
func TestStore(t *testing.T) {
	t.Parallel()
	ns, _, ec, s := setup(t, "http://127.0.0.1:1/")
	ctx := context.Background()

	a := decode(t, `{"name":"uploads","filter":{"type":"com.amazonaws.s3.object-created","source":"arn:aws:s3:::photos"},"function":"echo","args":{"k":"v"}}`)
	b := decode(t, `{"name":"pushes","filters":[{"exact":{"type":"com.github.push"}},{"prefix":{"subject":"refs/heads/"}}],"function":"echo"}`)
	createdA, err := s.Create(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	a.CreatedAt = createdA.CreatedAt
	if diff := cmp.Diff(a, createdA); diff != "" {
		t.Errorf("Create (-want +got):\n%s", diff)
	}
	if _, err := s.Create(ctx, a); !errors.Is(err, binding.ErrExists) {
		t.Errorf("Create again: %v, want ErrExists", err)
	}
	createdB, err := s.Create(ctx, b)
	if err != nil {
		t.Fatal(err)
	}

	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []binding.Binding{createdA, createdB}
	binding.Sort(want) // created in the same second, they are by name
	if diff := cmp.Diff(want, list); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(kubectlBindings(t, ns), list); diff != "" {
		t.Errorf("List differs from kubectl (-kubectl +List):\n%s", diff)
	}
	got, err := s.Get(ctx, "pushes")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(createdB, got); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}
	for _, name := range []string{"nope", "../x", "Bad"} {
		if _, err := s.Get(ctx, name); !errors.Is(err, binding.ErrNotFound) {
			t.Errorf("Get %q: %v, want ErrNotFound", name, err)
		}
	}

	// A Trigger of the Broker that is no binding is neither listed nor got.
	plain := &eventingv1.Trigger{
		ObjectMeta: metav1.ObjectMeta{Name: trigger.Name("plain"), Namespace: ns},
		Spec:       eventingv1.TriggerSpec{Broker: broker, Subscriber: duckv1.Destination{URI: apis.HTTP("example.com")}},
	}
	if _, err := ec.EventingV1().Triggers(ns).Create(ctx, plain, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "plain"); !errors.Is(err, binding.ErrNotFound) {
		t.Errorf("Get of an unlabelled Trigger: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "plain"); !errors.Is(err, binding.ErrNotFound) {
		t.Errorf("Delete of an unlabelled Trigger: %v, want ErrNotFound", err)
	}

	if err := s.Delete(ctx, "uploads"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "uploads"); !errors.Is(err, binding.ErrNotFound) {
		t.Errorf("Delete again: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "uploads"); !errors.Is(err, binding.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	list, err = s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(kubectlBindings(t, ns), list); diff != "" || len(list) != 1 {
		t.Errorf("List after Delete: %v; differs from kubectl (-kubectl +List):\n%s", list, diff)
	}
}

// TestTerminating checks that a binding whose Trigger is being deleted
// (held by a finalizer) is gone for the Store and the Informer.
func TestTerminating(t *testing.T) {
	t.Parallel()
	ns, _, ec, s := setup(t, "http://127.0.0.1:1/")
	ctx := context.Background()
	triggers := ec.EventingV1().Triggers(ns)
	inf := trigger.NewInformer(t.Context(), ec, ns)
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := inf.WaitForSync(waitCtx); err != nil {
		t.Fatal(err)
	}

	if _, err := s.Create(ctx, decode(t, `{"name":"held","filter":{"type":"t"},"function":"echo"}`)); err != nil {
		t.Fatal(err)
	}
	// Seen by the informer, then held at deletion.
	eventually(t, func() error { _, err := inf.Get(ctx, "held"); return err })
	patch := `{"metadata":{"finalizers":["kjobs.dev/test"]}}`
	if _, err := triggers.Patch(ctx, trigger.Name("held"), types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = triggers.Patch(context.Background(), trigger.Name("held"), types.JSONPatchType, []byte(`[{"op":"remove","path":"/metadata/finalizers"}]`), metav1.PatchOptions{})
	})
	if err := s.Delete(ctx, "held"); err != nil {
		t.Fatal(err)
	}
	if tr, err := triggers.Get(ctx, trigger.Name("held"), metav1.GetOptions{}); err != nil || tr.DeletionTimestamp == nil {
		t.Fatalf("the Trigger should be Terminating: %v, %v", tr, err)
	}
	if _, err := s.Get(ctx, "held"); !errors.Is(err, binding.ErrNotFound) {
		t.Errorf("Get: %v, want ErrNotFound", err)
	}
	if list, err := s.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("List = %v, %v; want none", list, err)
	}
	if err := s.Delete(ctx, "held"); !errors.Is(err, binding.ErrNotFound) {
		t.Errorf("Delete again: %v, want ErrNotFound", err)
	}
	eventually(t, func() error {
		if _, err := inf.Get(ctx, "held"); !errors.Is(err, binding.ErrNotFound) {
			return errors.New("the informer still has it")
		}
		return nil
	})
}

// TestInformer reads bindings through the informer-backed Getter.
func TestInformer(t *testing.T) {
	t.Parallel()
	ns, _, ec, s := setup(t, "http://127.0.0.1:1/")
	ctx := context.Background()

	// One whose context has ended never syncs: it says so.
	stopped, cancelStopped := context.WithCancel(ctx)
	cancelStopped()
	if _, err := trigger.NewInformer(stopped, ec, ns).Get(ctx, "any"); !errors.Is(err, trigger.ErrNotSynced) {
		t.Errorf("Get before sync: %v, want ErrNotSynced", err)
	}

	inf := trigger.NewInformer(t.Context(), ec, ns)
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := inf.WaitForSync(waitCtx); err != nil {
		t.Fatal(err)
	}
	if _, err := inf.Get(ctx, "uploads"); !errors.Is(err, binding.ErrNotFound) {
		t.Errorf("Get of an unknown binding: %v, want ErrNotFound", err)
	}
	created, err := s.Create(ctx, decode(t, `{"name":"uploads","filters":[{"suffix":{"subject":".png"}}],"function":"echo","args":{"size":"small"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var got binding.Binding
	eventually(t, func() error { got, err = inf.Get(ctx, "uploads"); return err })
	if diff := cmp.Diff(created, got); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}
	if err := s.Delete(ctx, "uploads"); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if _, err := inf.Get(ctx, "uploads"); !errors.Is(err, binding.ErrNotFound) {
			return errors.New("the informer still has it")
		}
		return nil
	})
}

// eventually retries f for up to 30 s, as an informer catches up.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// delivery is one request the Broker's filter made to the dispatcher.
type delivery struct{ path, eventType string }

// TestDeliveredByKnative creates bindings through the Store on a Broker of
// Knative's real data plane, waits until their Triggers are Ready and
// subscribed, and sends events to the Broker: each reaches the route of
// exactly the bindings whose filters select it, as local.Store.Match
// would choose them.
func TestDeliveredByKnative(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []delivery
	dispatcher := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		got = append(got, delivery{r.URL.Path, r.Header.Get("Ce-Type")})
		mu.Unlock()
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dispatcher.Listener = l
	dispatcher.Start()
	t.Cleanup(dispatcher.Close)

	ns, cfg, _, s := setup(t, dispatcher.URL+"/")
	dp := testenv.DataPlane(t)
	testenv.Broker(t, cfg, ns, broker, nil)
	ctx := context.Background()
	matcher := local.New()
	for _, body := range []string{
		`{"name":"created","filter":{"type":"com.amazonaws.s3.object-created"},"function":"echo"}`,
		`{"name":"s3","filters":[{"prefix":{"type":"com.amazonaws.s3."}},{"not":{"suffix":{"subject":".tmp"}}}],"function":"echo"}`,
	} {
		b := decode(t, body)
		if _, err := s.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
		if _, err := matcher.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
		testenv.WaitTrigger(t, cfg, ns, broker, trigger.Name(b.Name))
	}
	t.Cleanup(func() {
		for _, name := range []string{"created", "s3"} {
			_ = matcher.Delete(context.Background(), name)
		}
	})

	client, err := cloudevents.NewClientHTTP(cloudevents.WithTarget(dp.BrokerURL(ns, broker)))
	if err != nil {
		t.Fatal(err)
	}
	// What the local Broker would deliver, by local.Store.Match.
	var matched []delivery
	send := func(id, typ, subject string) {
		e := cloudevents.NewEvent()
		e.SetID(id)
		e.SetSource("arn:aws:s3:::photos")
		e.SetType(typ)
		e.SetSubject(subject)
		if res := client.Send(ctx, e); !cloudevents.IsACK(res) {
			t.Fatalf("sending %s: %v", id, res)
		}
		for _, b := range matcher.Match(e) {
			matched = append(matched, delivery{binding.SubscriberPath(b.Name), typ})
		}
	}
	send("1", "com.amazonaws.s3.object-created", "cat.png")
	send("2", "com.amazonaws.s3.object-removed", "cat.png")
	send("3", "com.amazonaws.s3.object-created", "cat.tmp")
	send("4", "com.github.push", "refs/heads/main")

	want := []delivery{
		{"/bindings/created", "com.amazonaws.s3.object-created"}, // 1
		{"/bindings/created", "com.amazonaws.s3.object-created"}, // 3
		{"/bindings/s3", "com.amazonaws.s3.object-created"},      // 1
		{"/bindings/s3", "com.amazonaws.s3.object-removed"},      // 2
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Anything more would come within a moment.
	time.Sleep(time.Second)
	mu.Lock()
	defer mu.Unlock()
	byPath := func(a, b delivery) int { return strings.Compare(a.path+a.eventType, b.path+b.eventType) }
	slices.SortFunc(got, byPath)
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(delivery{})); diff != "" {
		t.Errorf("deliveries (-want +got):\n%s", diff)
	}
	slices.SortFunc(matched, byPath)
	if diff := cmp.Diff(got, matched, cmp.AllowUnexported(delivery{})); diff != "" {
		t.Errorf("local Match differs from Knative's Broker (-Knative +Match):\n%s", diff)
	}
}

// TestAPI drives the API's binding routes over the Store: a good binding
// is a Trigger kubectl lists, a bad one is Knative's 400 problem and
// leaves no Trigger.
func TestAPI(t *testing.T) {
	t.Parallel()
	ns, _, ec, s := setup(t, "http://127.0.0.1:1/")
	rdb := testenv.Redis(t)
	srv := httptest.NewServer(api.New(api.Config{
		Store: store.New(rdb, store.Options{}), Sender: nil, Schedules: localschedule.New(nil), Bindings: s,
	}))
	t.Cleanup(srv.Close)
	do := func(method, path, body string) (int, http.Header, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header, out
	}
	noTriggers := func() {
		t.Helper()
		list, err := ec.EventingV1().Triggers(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 0 {
			t.Errorf("%d Triggers left, want none", len(list.Items))
		}
	}

	for _, tc := range []struct {
		name, body, field, detail string
		kind                      problem.Kind
	}{
		{"unknown dialect", `{"name":"a","filters":[{"regex":{"type":"x"}}],"function":"echo"}`, "filters", "unknown dialect regex", problem.InvalidFilter},
		{"empty filter", `{"name":"a","filter":{},"function":"echo"}`, "filter", "needs a filter", problem.InvalidFilter},
		{"filter without dialect", `{"name":"a","filters":[{}],"function":"echo"}`, "filters[0]", "one dialect", problem.InvalidFilter},
		{"attribute name Type", `{"name":"a","filter":{"Type":"x"},"function":"echo"}`, "filter[Type]", `invalid key name "Type"`, problem.InvalidFilter},
		{"attribute name ce-type", `{"name":"a","filters":[{"exact":{"ce-type":"x"}}],"function":"echo"}`, "filters[0].exact[ce-type]", "lowercase alphanumeric", problem.InvalidFilter},
		{"unknown function", `{"name":"a","filter":{"type":"x"},"function":"nope"}`, "function", "does not exist", problem.UnknownFunction},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, header, body := do("POST", "/jobs/bindings", tc.body)
			var p problem.Details
			if err := json.Unmarshal(body, &p); err != nil || header.Get("Content-Type") != problem.ContentType {
				t.Fatalf("%d %s: not a problem", status, body)
			}
			if status != 400 || p.Type != tc.kind.Type() || p.Field != tc.field || !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("%d %s; want 400 %s, field %q, detail with %q", status, body, tc.kind.Type(), tc.field, tc.detail)
			}
			noTriggers()
		})
	}

	status, header, body := do("POST", "/jobs/bindings", `{"name":"uploads","filters":[{"prefix":{"type":"com.amazonaws.s3."}}],"function":"echo"}`)
	if status != 201 || header.Get("Location") != "/jobs/bindings/uploads" {
		t.Fatalf("create: %d %v %s", status, header, body)
	}
	if status, _, body := do("POST", "/jobs/bindings", `{"name":"uploads","filter":{"type":"x"},"function":"echo"}`); status != 409 {
		t.Errorf("create again: %d %s, want 409", status, body)
	}
	_, _, body = do("GET", "/jobs/bindings", "")
	var list struct{ Bindings []binding.Binding }
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(kubectlBindings(t, ns), list.Bindings); diff != "" || len(list.Bindings) != 1 {
		t.Errorf("GET /jobs/bindings = %s; differs from kubectl (-kubectl +API):\n%s", body, diff)
	}
	_, _, body = do("GET", "/jobs/bindings/uploads", "")
	var shown binding.Binding
	if err := json.Unmarshal(body, &shown); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(kubectlBindings(t, ns), []binding.Binding{shown}); diff != "" {
		t.Errorf("GET /jobs/bindings/uploads differs from kubectl (-kubectl +API):\n%s", diff)
	}
	if status, _, body := do("DELETE", "/jobs/bindings/uploads", ""); status != 204 {
		t.Errorf("delete: %d %s", status, body)
	}
	if status, _, _ := do("GET", "/jobs/bindings/uploads", ""); status != 404 {
		t.Errorf("get after delete: %d, want 404", status)
	}
	if got := kubectlBindings(t, ns); len(got) != 0 {
		t.Errorf("kubectl lists %v after delete", got)
	}
}
