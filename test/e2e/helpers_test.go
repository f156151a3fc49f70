// Package e2e drives kjobs' real binaries and in-process pieces against the
// real control plane `make test` starts (the Job controller runs the Jobs,
// kwok plays the kubelet) and a real redis-server: redelivery of one event
// many times at once, a dispatcher killed in the middle of an attempt, and
// the local stack with KJOBS_RUNNER=kubernetes driven over HTTP.
//
// kwok runs no container: a pod succeeds unless its function's entry in the
// kjobs-functions ConfigMap gives it the label of kwok's chaos stage
// pod-container-running-failed, which fails it with the exit code, reason
// and message of the entry's pod annotations.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/kjobs/kjobs/internal/event"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/testenv"
)

// Labels of the Jobs the Kubernetes runner creates (internal/runner/kube).
const (
	labelJobID     = "kjobs.dev/job-id"
	labelAttempt   = "kjobs.dev/attempt"
	labelFunction  = "kjobs.dev/function"
	labelManagedBy = "app.kubernetes.io/managed-by"
)

// Names the Kubernetes runner and the dispatcher use by default.
const (
	jobServiceAccount  = "kjobs-job"
	functionsConfigMap = "kjobs-functions"
	// processorImage is never pulled: kwok runs no container.
	processorImage = "example.com/kjobs/processor:test"
)

// bin holds the binaries TestMain builds once for the package.
var bin struct {
	dispatcher string // github.com/kjobs/kjobs/functions/dispatcher
	local      string // github.com/kjobs/kjobs/services/local
}

func TestMain(m *testing.M) {
	testenv.Main(m, map[*string]string{
		&bin.dispatcher: "github.com/kjobs/kjobs/functions/dispatcher",
		&bin.local:      "github.com/kjobs/kjobs/services/local",
	})
}

// timeout bounds a test's waiting on the control plane, which a busy
// 2-core machine shared with other tests makes slow at times.
func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// testLog returns a logger whose lines are shown only when the test fails.
func testLog(t *testing.T) *slog.Logger {
	var mu sync.Mutex
	var buf bytes.Buffer
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	})
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			t.Logf("log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// cluster is a namespace of the test's own on the test control plane.
type cluster struct {
	cfg        *rest.Config
	client     kubernetes.Interface
	ns         string
	kubeconfig string
}

// newCluster makes a namespace that enforces the restricted Pod Security
// Standard, as the kjobs namespace does, with the ServiceAccount the Jobs'
// pods run as and, unless functions is nil, the functions ConfigMap.
func newCluster(t *testing.T, functions map[string]string) cluster {
	t.Helper()
	cfg := testenv.Kube(t) // fails the test when KJOBS_KUBECONFIG is unset
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns := testenv.JobsNamespace(t, cfg, functions)
	return cluster{cfg: cfg, client: client, ns: ns, kubeconfig: os.Getenv(testenv.KubeconfigEnv)}
}

// jobsOf lists the job's Jobs from the API server, by the job-id label
// alone (not managed-by), ordered by name.
func jobsOf(t *testing.T, ctx context.Context, client kubernetes.Interface, ns, id string) []batchv1.Job {
	t.Helper()
	list, err := client.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{
		LabelSelector: labels.Set{labelJobID: id}.String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(list.Items, func(a, b batchv1.Job) int { return strings.Compare(a.Name, b.Name) })
	return list.Items
}

// attemptNames returns the Job names of attempts 1 to n of job id.
func attemptNames(id string, n int) []string {
	names := make([]string, 0, n)
	for i := 1; i <= n; i++ {
		names = append(names, runner.Name(id, i))
	}
	return names
}

// checkJobLabels checks that the Jobs are attempts 1, 2, ... of job id
// running function, labelled as the runner labels them.
func checkJobLabels(t *testing.T, jobs []batchv1.Job, id, function string) {
	t.Helper()
	for i, j := range jobs {
		want := map[string]string{
			labelJobID: id, labelAttempt: strconv.Itoa(i + 1), labelFunction: function, labelManagedBy: "kjobs",
		}
		for k, v := range want {
			if j.Labels[k] != v {
				t.Errorf("Job %s: label %s = %q, want %q (labels %v)", j.Name, k, j.Labels[k], v, j.Labels)
			}
		}
	}
}

// waitJob watches for the named Job until cond holds for it.
func waitJob(t *testing.T, ctx context.Context, client kubernetes.Interface, ns, name, what string, cond func(*batchv1.Job) bool) *batchv1.Job {
	t.Helper()
	lw := cache.NewListWatchFromClient(client.BatchV1().RESTClient(), "jobs", ns, fields.OneTermEqualSelector("metadata.name", name))
	ev, err := watchtools.UntilWithSync(ctx, lw, &batchv1.Job{}, nil, func(e watch.Event) (bool, error) {
		j, ok := e.Object.(*batchv1.Job)
		return ok && e.Type != watch.Deleted && cond(j), nil
	})
	if err != nil {
		t.Fatalf("waiting for Job %s/%s %s: %v", ns, name, what, err)
	}
	return ev.Object.(*batchv1.Job)
}

// exists is a waitJob condition.
func exists(*batchv1.Job) bool { return true }

// delivery is one CloudEvent, posted in binary content mode as a Broker
// posts it.
type delivery struct {
	id         string
	data       string // application/json
	extensions map[string]string
}

// requested is the dev.kjobs.job.requested event of job id.
func requested(id, data string) delivery {
	return delivery{id: id, data: data}
}

// answer is what one delivery got back.
type answer struct {
	status int
	body   string
	err    error
}

func (a answer) String() string {
	if a.err != nil {
		return "error " + a.err.Error()
	}
	return fmt.Sprintf("%d %q", a.status, a.body)
}

// client has no timeout of its own: a delivery waits for its attempt, and
// the test's context bounds it.
var client = &http.Client{}

// post delivers d to url. wrote, if not nil, is closed once the whole
// request has been written.
func (d delivery) post(ctx context.Context, url string, wrote chan<- struct{}) answer {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(d.data))
	if err != nil {
		return answer{err: err}
	}
	if wrote != nil {
		var once sync.Once
		req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(func() { close(wrote) }) },
		}))
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("Ce-Specversion", "1.0")
	h.Set("Ce-Id", d.id)
	h.Set("Ce-Type", event.TypeRequested)
	h.Set("Ce-Source", event.SourceAPI)
	h.Set("Ce-Time", time.Now().UTC().Format(time.RFC3339Nano))
	for k, v := range d.extensions {
		h.Set("Ce-"+k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: string(body), err: err}
}

// postConcurrently delivers d to url n times at once and returns every
// answer.
func (d delivery) postConcurrently(ctx context.Context, url string, n int) []answer {
	answers := make([]answer, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			answers[i] = d.post(ctx, url, nil)
		})
	}
	close(start)
	wg.Wait()
	return answers
}

// postAsync delivers d to url in the background; the answer arrives on the
// returned channel, and wrote is closed once the request was written.
func (d delivery) postAsync(ctx context.Context, url string) (answers <-chan answer, wrote <-chan struct{}) {
	a := make(chan answer, 1)
	w := make(chan struct{})
	go func() { a <- d.post(ctx, url, w) }()
	return a, w
}

// checkAnswers checks that every answer has status want and a body that
// contains body.
func checkAnswers(t *testing.T, what string, answers []answer, want int, body string) {
	t.Helper()
	bad := 0
	for i, a := range answers {
		if a.err != nil || a.status != want || !strings.Contains(a.body, body) {
			bad++
			t.Errorf("%s: delivery %d of %d answered %v, want %d with a body containing %q", what, i+1, len(answers), a, want, body)
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d deliveries answered otherwise than %d", what, bad, len(answers), want)
	}
}

// api is the local stack's HTTP API.
type api struct {
	t   *testing.T
	url string
}

// do sends a request with an optional JSON body and decodes a JSON answer
// into out, unless out is nil. It returns the status and the raw body.
func (a api) do(ctx context.Context, method, path string, body any, out any) (int, string) {
	a.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			a.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.url+path, r)
	if err != nil {
		a.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			a.t.Fatalf("%s %s: %v\n%s", method, path, err, raw)
		}
	}
	return resp.StatusCode, string(raw)
}

// waitFinished polls GET /jobs/<id> until the job has finished, and returns it.
func (a api) waitFinished(ctx context.Context, id string) job.Job {
	a.t.Helper()
	for {
		var j job.Job
		status, body := a.do(ctx, http.MethodGet, "/jobs/"+id, nil, &j)
		if status != http.StatusOK {
			a.t.Fatalf("GET /jobs/%s = %d, want 200\n%s", id, status, body)
		}
		if j.Status.Terminal() {
			return j
		}
		select {
		case <-ctx.Done():
			a.t.Fatalf("job %s (%s) did not finish: %v; it is %s with %d attempts", id, j.Function, ctx.Err(), j.Status, len(j.Attempts))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// startLocal runs the local stack's binary with KJOBS_RUNNER=kubernetes
// against cluster c, on a real redis-server, and returns its API once it
// is ready.
func startLocal(t *testing.T, ctx context.Context, c cluster) api {
	t.Helper()
	port := testenv.FreePort(t)
	stack := testenv.StartProcess(t, "local", bin.local,
		"KJOBS_RUNNER=kubernetes",
		"KUBECONFIG="+c.kubeconfig,
		"KJOBS_NAMESPACE="+c.ns,
		"KJOBS_PROCESSOR_IMAGE=example.com/p:1",
		fmt.Sprintf("PORT=%d", port),
		fmt.Sprintf("KJOBS_BROKER_PORT=%d", testenv.FreePort(t)),
		"REDIS_URL=redis://"+testenv.RedisAddr(t),
		"KJOBS_JOB_DEADLINE=2m",
	)
	a := api{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	stack.WaitReady(t, ctx, a.url+"/readyz")
	return a
}
