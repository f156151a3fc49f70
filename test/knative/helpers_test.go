// Package knative runs kjobs' own API and dispatcher, as host processes,
// in front of Knative Eventing's real data plane that the control plane
// `make test` starts: the MT channel-based Broker's ingress and filter, the
// in-memory channel dispatcher and the PingSource adapter, with the
// Triggers of config/ (their filters and delivery spec read from
// config/300-trigger-*.yaml). Every test has its own namespace laid out like
// the kjobs one, its own redis-server, Broker, Triggers, API and
// dispatcher.
//
// kwok runs no container: a pod succeeds unless its function's entry in the
// kjobs-functions ConfigMap gives it the label of kwok's chaos stage
// pod-container-running-failed, which fails it with the exit code and
// message of the entry's pod annotations, or places it on a node pool that
// does not exist yet, which holds it Pending (the attempt "runs") until the
// test adds the node.
//
// The tests that stop a component of the data plane do not call t.Parallel,
// so that they run alone, before the parallel ones.
package knative

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	"sigs.k8s.io/yaml"

	eventingduckv1 "knative.dev/eventing/pkg/apis/duck/v1"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/testenv"
)

// bin holds the binaries TestMain builds once for the package.
var bin struct {
	api        string // github.com/kjobs/kjobs/services/api
	dispatcher string // github.com/kjobs/kjobs/functions/dispatcher
}

func TestMain(m *testing.M) {
	testenv.Main(m, map[*string]string{
		&bin.api:        "github.com/kjobs/kjobs/services/api",
		&bin.dispatcher: "github.com/kjobs/kjobs/functions/dispatcher",
	})
}

// Names the config/ manifests give the pieces.
const (
	brokerName         = "kjobs"
	jobServiceAccount  = "kjobs-job" // testenv.JobsNamespace creates it
	functionsConfigMap = "kjobs-functions"
	// processorImage is never pulled: kwok runs no container.
	processorImage = "example.com/kjobs/processor:test"
	labelJobID     = "kjobs.dev/job-id"
)

// The Triggers' delivery spec (config/300-trigger-*.yaml): two retries,
// exponential backoff from 2 s.
var backoffs = []time.Duration{2 * time.Second, 4 * time.Second}

// timeout bounds a test's waiting, which a busy 2-core machine shared with
// other tests makes slow at times.
func timeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// direct never goes through a proxy of the environment and has no timeout
// of its own: the tests' contexts bound every request.
var direct = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}}

// options are what a test changes of the stack config/ describes.
type options struct {
	// functions is the kjobs-functions ConfigMap's data.
	functions map[string]string
	// syncBroker leaves messaging.knative.dev/async-handler off the
	// Broker, as a Broker created without the dev overlay's is.
	syncBroker bool
	// delivery changes the Triggers' delivery spec read from config/.
	delivery func(*eventingduckv1.DeliverySpec)
	// sweepAfter is the dispatcher's KJOBS_SWEEP_AFTER. Defaults to 2m,
	// the dispatcher's own default, so that the sweep stays out of tests
	// that are not about it.
	sweepAfter time.Duration
	// jobGrace is the dispatcher's KJOBS_JOB_GRACE, how long a Job is kept
	// once its outcome is recorded. Defaults to config/'s 10m.
	jobGrace time.Duration
	// noTriggers leaves out the Triggers, so that events stop at the
	// Broker's channel: for a benchmark of the send alone.
	noTriggers bool
	// replicas is how many dispatcher processes share the Triggers, behind
	// a proxy that, like a Service, sends each delivery to one of them
	// that is up. Defaults to 1, with no proxy.
	replicas int
}

// stack is kjobs on the real data plane, in a namespace of the test's own.
type stack struct {
	t          testing.TB
	cfg        *rest.Config
	kube       kubernetes.Interface
	ns         string
	kubeconfig string
	eventing   *testenv.Eventing
	redis      *testenv.RedisProcess
	api        api
	// The dispatcher listens on a port of its own that the Triggers name;
	// a restarted dispatcher takes the same one.
	dispatcherPort int
	dispatcherURL  string
	dispatcher     *testenv.Process
	dispatcherEnv  []string
	starts         int
	// replicas are the dispatchers behind the proxy when options.replicas
	// is above 1; dispatcher is then the first of them.
	replicas []*testenv.Process
	// The API keeps its port across restarts too.
	apiProcess *testenv.Process
	apiEnv     []string
	apiStarts  int
}

// newStack makes a namespace that enforces the restricted Pod Security
// Standard, with the Jobs' ServiceAccount and the functions ConfigMap, a
// redis-server, the Broker (with the async-handler annotation unless
// opts.syncBroker), the dispatcher and the two Triggers of config/ whose
// subscriber and dead-letter sink it is, and the API sending to the Broker.
func newStack(t testing.TB, opts options) *stack {
	t.Helper()
	ctx := timeout(t, 3*time.Minute)
	cfg := testenv.Kube(t)
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	functions := opts.functions
	if functions == nil {
		functions = map[string]string{}
	}
	s := &stack{
		t: t, cfg: cfg, kube: kube,
		ns:         testenv.JobsNamespace(t, cfg, functions),
		kubeconfig: os.Getenv(testenv.KubeconfigEnv),
		eventing:   testenv.DataPlane(t),
		redis:      testenv.RedisServer(t),
	}
	var annotations map[string]string
	if !opts.syncBroker {
		annotations = map[string]string{testenv.AsyncHandlerAnnotation: "true"}
	}
	testenv.Broker(t, cfg, s.ns, brokerName, annotations)
	sink := s.eventing.BrokerURL(s.ns, brokerName)
	redisURL := "redis://" + s.redis.Addr

	sweepAfter := opts.sweepAfter
	if sweepAfter == 0 {
		sweepAfter = 2 * time.Minute
	}
	jobGrace := opts.jobGrace
	if jobGrace == 0 {
		jobGrace = 10 * time.Minute
	}
	s.dispatcherPort = testenv.FreePort(t)
	s.dispatcherURL = fmt.Sprintf("http://127.0.0.1:%d", s.dispatcherPort)
	// As config/500-dispatcher.yaml sets it, and the SinkBinding would.
	s.dispatcherEnv = []string{
		fmt.Sprintf("PORT=%d", s.dispatcherPort),
		"REDIS_URL=" + redisURL,
		"K_SINK=" + sink,
		"KJOBS_NAMESPACE=" + s.ns,
		"KJOBS_PROCESSOR_IMAGE=" + processorImage,
		"KJOBS_JOB_SERVICE_ACCOUNT=" + jobServiceAccount,
		"KJOBS_JOB_DEADLINE=9m",
		"KJOBS_JOB_TTL=1h",
		"KJOBS_JOB_GRACE=" + jobGrace.String(),
		"KJOBS_FUNCTIONS_CONFIGMAP=" + functionsConfigMap,
		"KJOBS_RETENTION=168h",
		"KJOBS_SWEEP_AFTER=" + sweepAfter.String(),
		// An admin kubeconfig: these tests are not about RBAC.
		"KUBECONFIG=" + s.kubeconfig,
	}
	if opts.replicas > 1 {
		s.startReplicas(ctx, opts.replicas)
	} else {
		s.startDispatcher(ctx)
	}

	for _, file := range []string{"300-trigger-requested.yaml", "300-trigger-schedule.yaml"} {
		if opts.noTriggers {
			break
		}
		name, filter, delivery := configTrigger(t, file, s.dispatcherURL)
		if opts.delivery != nil {
			opts.delivery(delivery)
		}
		testenv.Trigger(t, cfg, s.ns, brokerName, name, s.dispatcherURL+"/", &testenv.TriggerOptions{
			Filter: filter, Delivery: delivery,
		})
	}

	apiPort := testenv.FreePort(t)
	// As config/500-api.yaml sets it, and the SinkBinding would.
	s.apiEnv = []string{
		fmt.Sprintf("PORT=%d", apiPort),
		"REDIS_URL=" + redisURL,
		"K_SINK=" + sink,
		"KJOBS_AUTH_DISABLED=true",
		"KJOBS_NAMESPACE=" + s.ns,
		"KJOBS_BROKER=" + brokerName,
		// The bindings' Triggers deliver to the dispatcher process, as
		// config/'s Triggers do here.
		"KJOBS_DISPATCHER_URL=" + s.dispatcherURL,
		"KJOBS_RETENTION=168h",
		"KUBECONFIG=" + s.kubeconfig,
	}
	s.api = api{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", apiPort)}
	s.startAPI(ctx)
	return s
}

// startAPI starts the API binary on its port and waits until it serves.
func (s *stack) startAPI(ctx context.Context) {
	s.t.Helper()
	s.apiStarts++
	name := "api"
	if s.apiStarts > 1 {
		name = fmt.Sprintf("api-%d", s.apiStarts)
	}
	s.apiProcess = testenv.StartProcess(s.t, name, bin.api, s.apiEnv...)
	s.apiProcess.WaitReady(s.t, ctx, s.api.url+"/readyz")
}

// startDispatcher starts the dispatcher binary on its port and waits until
// it serves: it listens once its informers have synced.
func (s *stack) startDispatcher(ctx context.Context) {
	s.t.Helper()
	s.starts++
	s.dispatcher = testenv.StartProcess(s.t, fmt.Sprintf("dispatcher-%d", s.starts), bin.dispatcher, s.dispatcherEnv...)
	s.dispatcher.WaitReady(s.t, ctx, s.dispatcherURL+"/readyz")
}

// startReplicas starts n dispatcher processes on ports of their own and,
// on the dispatcher's port, a proxy that sends each delivery to the next of
// them in turn, skipping one that does not take the connection, as a
// Service's endpoints drop a pod that died.
func (s *stack) startReplicas(ctx context.Context, n int) {
	s.t.Helper()
	var backends []string
	for i := range n {
		port := testenv.FreePort(s.t)
		env := append(slices.Clone(s.dispatcherEnv), fmt.Sprintf("PORT=%d", port))
		url := fmt.Sprintf("http://127.0.0.1:%d", port)
		p := testenv.StartProcess(s.t, fmt.Sprintf("dispatcher-replica-%d", i), bin.dispatcher, env...)
		p.WaitReady(s.t, ctx, url+"/readyz")
		s.replicas = append(s.replicas, p)
		backends = append(backends, url)
	}
	s.dispatcher = s.replicas[0]
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", s.dispatcherPort))
	if err != nil {
		s.t.Fatal(err)
	}
	var next atomic.Uint64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		first := next.Add(1)
		for i := range uint64(len(backends)) {
			req, err := http.NewRequestWithContext(r.Context(), r.Method, backends[(first+i)%uint64(len(backends))]+r.URL.Path, bytes.NewReader(body))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			req.Header = r.Header.Clone()
			resp, err := direct.Do(req)
			if err != nil {
				continue // down: the next replica takes it
			}
			maps.Copy(w.Header(), resp.Header)
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, resp.Body)
			resp.Body.Close()
			return
		}
		http.Error(w, "no dispatcher replica is up", http.StatusBadGateway)
	})}
	go func() { _ = srv.Serve(l) }()
	s.t.Cleanup(func() { _ = srv.Close() })
}

// configTrigger reads a Trigger of config/ and returns its name, filter and
// delivery spec, with the dispatcher (a Knative Service there) replaced by
// the dispatcher process at dispatcherURL.
func configTrigger(t testing.TB, file, dispatcherURL string) (string, map[string]string, *eventingduckv1.DeliverySpec) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", file))
	if err != nil {
		t.Fatal(err)
	}
	var tr eventingv1.Trigger
	if err := yaml.UnmarshalStrict(raw, &tr); err != nil {
		t.Fatalf("config/%s: %v", file, err)
	}
	d := tr.Spec.Delivery
	if tr.Spec.Filter == nil || d == nil || d.DeadLetterSink == nil || d.DeadLetterSink.URI == nil {
		t.Fatalf("config/%s has no filter, delivery or dead-letter sink", file)
	}
	dls, err := apis.ParseURL(dispatcherURL + d.DeadLetterSink.URI.Path)
	if err != nil {
		t.Fatal(err)
	}
	d.DeadLetterSink = &duckv1.Destination{URI: dls}
	return tr.Name, tr.Spec.Filter.Attributes, d
}

// addNode adds a kwok node for pool; see testenv.AddNode.
func (s *stack) addNode(ctx context.Context, pool string) {
	s.t.Helper()
	testenv.AddNode(s.t, ctx, s.kube, pool)
}

// setFunction sets (or, with an empty entry, removes) a function's entry of
// the functions ConfigMap. The dispatcher reads it when it creates a Job.
func (s *stack) setFunction(ctx context.Context, function, entry string) {
	s.t.Helper()
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := s.kube.CoreV1().ConfigMaps(s.ns).Get(ctx, functionsConfigMap, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		if entry == "" {
			delete(cm.Data, function)
		} else {
			cm.Data[function] = entry
		}
		_, err = s.kube.CoreV1().ConfigMaps(s.ns).Update(ctx, cm, metav1.UpdateOptions{})
		return err
	}); err != nil {
		s.t.Fatalf("changing %s's entry of the functions ConfigMap: %v", function, err)
	}
}

// jobs lists job id's Jobs from the API server, ordered by attempt.
func (s *stack) jobs(ctx context.Context, id string) []batchv1.Job {
	s.t.Helper()
	list, err := s.kube.BatchV1().Jobs(s.ns).List(ctx, metav1.ListOptions{
		LabelSelector: labels.Set{labelJobID: id}.String(),
	})
	if err != nil {
		s.t.Fatal(err)
	}
	slices.SortFunc(list.Items, func(a, b batchv1.Job) int {
		an, _ := strconv.Atoi(a.Labels["kjobs.dev/attempt"])
		bn, _ := strconv.Atoi(b.Labels["kjobs.dev/attempt"])
		return an - bn
	})
	return list.Items
}

// waitJob polls for the named Job until cond holds for it.
func (s *stack) waitJob(ctx context.Context, name, what string, cond func(*batchv1.Job) bool) *batchv1.Job {
	s.t.Helper()
	for {
		j, err := s.kube.BatchV1().Jobs(s.ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && cond(j) {
			return j
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("Job %s/%s %s: %v (last error %v)", s.ns, name, what, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// exists is a waitJob condition.
func exists(*batchv1.Job) bool { return true }

// failedJob is a waitJob condition: the Job has failed.
func failedJob(j *batchv1.Job) bool { return testenv.JobOutcome(j) == batchv1.JobFailed }

// attemptNames returns the Job names of attempts from to n of job id.
func attemptNames(id string, from, n int) []string {
	var names []string
	for i := from; i <= n; i++ {
		names = append(names, runner.Name(id, i))
	}
	return names
}

// api is the kjobs API process.
type api struct {
	t   testing.TB
	url string
}

// do sends a request with an optional JSON body and decodes a JSON answer
// into out, unless out is nil. It returns the status and the raw body.
func (a api) do(ctx context.Context, method, path, body string, out any) (int, string) {
	a.t.Helper()
	status, raw, err := a.try(ctx, method, path, body)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	if out != nil && status < 300 {
		if err := json.Unmarshal([]byte(raw), out); err != nil {
			a.t.Fatalf("%s %s: %v\n%s", method, path, err, raw)
		}
	}
	return status, raw
}

func (a api) try(ctx context.Context, method, path, body string) (int, string, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.url+path, r)
	if err != nil {
		return 0, "", err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := direct.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw), err
}

// submit POSTs a job and returns its ID; it fails the test unless the API
// answered 202 with a queued job.
func (a api) submit(ctx context.Context, body string) string {
	a.t.Helper()
	var j job.Job
	status, raw := a.do(ctx, http.MethodPost, "/jobs", body, &j)
	if status != http.StatusAccepted || j.ID == "" {
		a.t.Fatalf("POST /jobs %s = %d, want 202 with a job\n%s", body, status, raw)
	}
	return j.ID
}

// get returns job id.
func (a api) get(ctx context.Context, id string) job.Job {
	a.t.Helper()
	var j job.Job
	if status, raw := a.do(ctx, http.MethodGet, "/jobs/"+id, "", &j); status != http.StatusOK {
		a.t.Fatalf("GET /jobs/%s = %d, want 200\n%s", id, status, raw)
	}
	return j
}

// waitFor polls GET /jobs/<id> until cond holds for the job, and returns it.
func (a api) waitFor(ctx context.Context, id, what string, cond func(job.Job) bool) job.Job {
	a.t.Helper()
	for {
		j := a.get(ctx, id)
		if cond(j) {
			return j
		}
		select {
		case <-ctx.Done():
			a.t.Fatalf("job %s (%s) %s: %v; it is %s with %d attempts, error %q", id, j.Function, what, ctx.Err(), j.Status, len(j.Attempts), j.Error)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitFinished waits until job id has finished and returns it.
func (a api) waitFinished(ctx context.Context, id string) job.Job {
	a.t.Helper()
	return a.waitFor(ctx, id, "did not finish", func(j job.Job) bool { return j.Status.Terminal() })
}

// stats returns GET /jobs/stats.
func (a api) stats(ctx context.Context) job.Stats {
	a.t.Helper()
	var st job.Stats
	if status, raw := a.do(ctx, http.MethodGet, "/jobs/stats", "", &st); status != http.StatusOK {
		a.t.Fatalf("GET /jobs/stats = %d\n%s", status, raw)
	}
	return st
}

// attemptSummary is what a test checks of an attempt.
type attemptSummary struct {
	Attempt int
	Job     string
	Outcome job.Outcome
	Message string
}

func summarize(attempts []job.Attempt) []attemptSummary {
	out := make([]attemptSummary, 0, len(attempts))
	for _, a := range attempts {
		out = append(out, attemptSummary{a.Attempt, a.Job, a.Outcome, a.Message})
	}
	return out
}

func failed(id string, n int, message string) attemptSummary {
	return attemptSummary{n, runner.Name(id, n), job.OutcomeFailed, message}
}

func succeeded(id string, n int) attemptSummary {
	return attemptSummary{n, runner.Name(id, n), job.OutcomeSucceeded, ""}
}

// event is a CloudEvent posted in binary content mode, as the Broker posts
// one to its subscriber and dead-letter sink.
type event struct {
	id, typ, source string
	data            []byte
	extensions      map[string]string
}

// requestedEvent is the dev.kjobs.job.requested event of job id.
func requestedEvent(id, data string) event {
	return event{id: id, typ: "dev.kjobs.job.requested", source: "/kjobs/api", data: []byte(data)}
}

// post delivers e to url and returns the status and body of the answer.
func (e event) post(t testing.TB, ctx context.Context, url string) (int, string) {
	t.Helper()
	status, body, err := e.send(ctx, url)
	if err != nil {
		t.Fatalf("posting event %s to %s: %v", e.id, url, err)
	}
	return status, body
}

// try delivers e to url and returns the status of the answer, for a
// goroutine other than the test's, which cannot fail it.
func (e event) try(ctx context.Context, url string) (int, error) {
	status, _, err := e.send(ctx, url)
	return status, err
}

func (e event) send(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(e.data))
	if err != nil {
		return 0, "", err
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("Ce-Specversion", "1.0")
	h.Set("Ce-Id", e.id)
	h.Set("Ce-Type", e.typ)
	h.Set("Ce-Source", e.source)
	for k, v := range e.extensions {
		h.Set("Ce-"+k, v)
	}
	resp, err := direct.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// deliveries returns how many requests the dispatcher answered on route
// ("receive" or "dead-letter") with code, from its /metrics; 0 when it
// cannot tell.
func (s *stack) deliveries(ctx context.Context, route string, code int) int {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.dispatcherURL+"/metrics", nil)
	resp, err := direct.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	want := fmt.Sprintf(`kjobs_dispatcher_deliveries_total{code="%d",route="%s"} `, code, route)
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), want); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return 0
}

// waitDeliveries waits until the dispatcher has answered at least n
// requests on route with code.
func (s *stack) waitDeliveries(ctx context.Context, route string, code, n int) {
	s.t.Helper()
	for s.deliveries(ctx, route, code) < n {
		select {
		case <-ctx.Done():
			s.t.Fatalf("the dispatcher did not answer %d requests on %s with %d: %v", n, route, code, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// quantile returns the q-quantile of values (nearest rank), or the zero
// value when there are none.
func quantile[T cmp.Ordered](values []T, q float64) T {
	if len(values) == 0 {
		var zero T
		return zero
	}
	v := slices.Clone(values)
	slices.Sort(v)
	i := int(q*float64(len(v))+0.5) - 1
	return v[min(max(i, 0), len(v)-1)]
}

// timed is a POST /jobs answered in the background.
type timed struct {
	status int
	body   string
	took   time.Duration
	err    error
}

// submitLater POSTs a job in the background and reports its answer and
// how long it took on the returned channel.
func (a api) submitLater(ctx context.Context, body string) <-chan timed {
	out := make(chan timed, 1)
	var once sync.Once
	go func() {
		begin := time.Now()
		status, raw, err := a.try(ctx, http.MethodPost, "/jobs", body)
		once.Do(func() { out <- timed{status, raw, time.Since(begin), err} })
	}()
	return out
}

// watchCreated watches the stack's namespace for Jobs being created from
// now on; the function it returns gives their names so far, in order, each
// as often as it was created.
func (s *stack) watchCreated(ctx context.Context) func() []string {
	s.t.Helper()
	w, err := s.kube.BatchV1().Jobs(s.ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(w.Stop)
	var mu sync.Mutex
	var names []string
	go func() {
		for ev := range w.ResultChan() {
			if j, ok := ev.Object.(*batchv1.Job); ok && ev.Type == watch.Added {
				mu.Lock()
				names = append(names, j.Name)
				mu.Unlock()
			}
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(names)
	}
}
