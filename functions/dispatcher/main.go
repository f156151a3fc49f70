// Command dispatcher is the subscriber of the kjobs Triggers: each delivery
// becomes one attempt, run as a batch/v1 Job, and its dead-letter path
// marks jobs failed for good. Beside the deliveries it reconciles kjobs Jobs,
// recording every attempt's outcome from the cluster, and sweeps for jobs
// whose event was lost, re-sending it to the Broker.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served only with KJOBS_PPROF_ADDR
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"knative.dev/eventing/pkg/client/clientset/versioned"

	"github.com/kjobs/kjobs/internal/binding/trigger"
	"github.com/kjobs/kjobs/internal/catalog"
	"github.com/kjobs/kjobs/internal/cluster"
	"github.com/kjobs/kjobs/internal/delivery"
	"github.com/kjobs/kjobs/internal/dispatch"
	"github.com/kjobs/kjobs/internal/httpserver"
	"github.com/kjobs/kjobs/internal/metrics"
	"github.com/kjobs/kjobs/internal/runner/kube"
	"github.com/kjobs/kjobs/internal/store"
)

type envConfig struct {
	// Port to listen on; Knative sets it. Defaults to 8080.
	Port int `envconfig:"PORT" default:"8080"`
	// Host is the address to listen on. Defaults to every interface, as a
	// pod needs; `make cluster` sets 127.0.0.1.
	Host string `envconfig:"KJOBS_HOST"`
	// RedisURL is where job state lives.
	RedisURL string `envconfig:"REDIS_URL" required:"true"`
	// Namespace holds the Jobs. Defaults to the pod's own namespace.
	Namespace string `envconfig:"KJOBS_NAMESPACE"`
	// JobServiceAccount is the identity of the Jobs' pods.
	JobServiceAccount string `envconfig:"KJOBS_JOB_SERVICE_ACCOUNT" default:"kjobs-job"`
	// ProcessorImage is the image every Job runs.
	ProcessorImage string `envconfig:"KJOBS_PROCESSOR_IMAGE" required:"true"`
	// JobDeadline is each Job's activeDeadlineSeconds.
	JobDeadline time.Duration `envconfig:"KJOBS_JOB_DEADLINE" default:"10m"`
	// StartDeadline is how long a Job's pod may stay unschedulable, or
	// wait with ErrImagePull or CreateContainerConfigError, before its
	// attempt fails with that reason.
	StartDeadline time.Duration `envconfig:"KJOBS_START_DEADLINE" default:"5m"`
	// JobTTL is each Job's ttlSecondsAfterFinished: how long a finished Job
	// whose outcome no dispatcher recorded is kept.
	JobTTL time.Duration `envconfig:"KJOBS_JOB_TTL" default:"24h"`
	// JobGrace is how long a finished Job is kept once its outcome is
	// recorded.
	JobGrace time.Duration `envconfig:"KJOBS_JOB_GRACE" default:"10m"`
	// Sink is the Broker's address, injected by the SinkBinding; the sweep
	// re-sends lost events there.
	Sink string `envconfig:"K_SINK" required:"true"`
	// SweepAfter is how long a job may wait for a delivery before the sweep
	// re-sends its event.
	SweepAfter time.Duration `envconfig:"KJOBS_SWEEP_AFTER" default:"2m"`
	// FunctionsConfigMap places and sizes each function's pods.
	FunctionsConfigMap string `envconfig:"KJOBS_FUNCTIONS_CONFIGMAP" default:"kjobs-functions"`
	// Retention is how long finished jobs are kept.
	Retention time.Duration `envconfig:"KJOBS_RETENTION" default:"168h"`
	// MaxRunning caps how many jobs of every function run at once; 0 is no
	// cap. Each function's own cap is maxRunning in its ConfigMap entry.
	MaxRunning int `envconfig:"KJOBS_MAX_RUNNING" default:"0"`
	// MaxAttempts is how many attempts a job gets: the Triggers' retry
	// count plus one.
	MaxAttempts int `envconfig:"KJOBS_MAX_ATTEMPTS" default:"3"`
	// KubeQPS is how many requests a second the dispatcher's Kubernetes
	// client may send, in bursts of twice as many. A new job costs three
	// (a Get that checks for a racing attempt, the Job's create, the
	// reconciler's patch once it is recorded); at cluster.Config's 50 the
	// client alone held one dispatcher to 16.7 jobs/s (BENCHMARKS.md, "End
	// to end (issue 10, target 3)"). The API server's own priority and
	// fairness protects it. Defaults to 200.
	KubeQPS float32 `envconfig:"KJOBS_KUBE_QPS" default:"200"`
	// PprofAddr is where net/http/pprof's handlers listen, so that a
	// benchmark can take the dispatcher's CPU profile under load
	// (test/knative BenchmarkEndToEnd). Defaults to empty: no profile is
	// served, as in every install.
	PprofAddr string `envconfig:"KJOBS_PPROF_ADDR"`
}

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("dispatcher stopped", "error", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	// A signal stops the server, which then drains the deliveries it holds.
	// Those still wait for their Jobs through the informers, so the runner,
	// its reconciler and the sweep have a context of their own that ends
	// only once the server has returned.
	serving, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var env envConfig
	if err := envconfig.Process("", &env); err != nil {
		return err
	}
	if env.MaxAttempts < 1 {
		return fmt.Errorf("KJOBS_MAX_ATTEMPTS: %d: want 1 or more", env.MaxAttempts)
	}
	if env.MaxRunning < 0 {
		return fmt.Errorf("KJOBS_MAX_RUNNING: %d: want 0 (no cap) or more", env.MaxRunning)
	}
	if env.KubeQPS <= 0 {
		return fmt.Errorf("KJOBS_KUBE_QPS: %v: want more than 0", env.KubeQPS)
	}
	redisOpts, err := redis.ParseURL(env.RedisURL)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	clients := metrics.Register(reg)
	rdb := redis.NewClient(redisOpts)
	rdb.AddHook(clients.Redis())
	defer rdb.Close()
	restCfg, namespace, err := cluster.Config(env.Namespace)
	if err != nil {
		return err
	}
	restCfg.QPS, restCfg.Burst = env.KubeQPS, int(2*env.KubeQPS)
	restCfg.Wrap(clients.APIServer)
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	runner, err := kube.New(ctx, client, kube.Config{
		Namespace: namespace, Image: env.ProcessorImage, ServiceAccount: env.JobServiceAccount,
		Deadline: env.JobDeadline, StartDeadline: env.StartDeadline, TTL: env.JobTTL, Grace: env.JobGrace,
		FunctionsConfigMap: env.FunctionsConfigMap, Log: log,
	})
	if err != nil {
		return err
	}
	sender, err := delivery.NewHTTPSender(env.Sink)
	if err != nil {
		return err
	}
	d := dispatch.New(store.New(rdb, store.Options{Retention: env.Retention}), runner, log)
	d.SetMaxAttempts(env.MaxAttempts)
	eventing, err := versioned.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	d.SetBindings(trigger.NewInformer(ctx, eventing, namespace))
	// The declarations are read before the first delivery, which would
	// otherwise find a declared function unknown; WatchFunctions keeps
	// them current.
	functions := catalog.New(false)
	functions.Update(runner.Functions(), log)
	d.SetFunctions(functions)
	handler := d.Handler(reg)
	l, err := net.Listen("tcp", net.JoinHostPort(env.Host, strconv.Itoa(env.Port)))
	if err != nil {
		return err
	}
	log.Info("dispatcher listening", "addr", l.Addr().String())
	if env.PprofAddr != "" {
		// net/http/pprof registers on the default mux, which serves
		// nothing else here.
		go func() { log.Error("pprof server stopped", "error", http.ListenAndServe(env.PprofAddr, nil)) }()
	}
	var g errgroup.Group
	g.Go(func() error { return d.Reconcile(ctx) })
	g.Go(func() error { return d.Sweep(ctx, sender, env.SweepAfter) })
	g.Go(func() error { return d.HandOff(ctx, sender) })
	g.Go(func() error { return d.Cancels(ctx) })
	g.Go(func() error {
		return runner.WatchFunctions(ctx, func(data map[string]string) {
			functions.Update(data, log)
			caps, err := dispatch.CapsFor(env.MaxRunning, data)
			if err != nil {
				log.Error("the functions ConfigMap has malformed entries; their functions are not capped", "error", err)
			}
			d.PutCaps(ctx, caps)
		})
	})
	// A delivery waits for its Job, so the write timeout outlasts a job.
	err = httpserver.New(handler, httpserver.Timeouts{Write: env.JobDeadline + time.Minute}, log).Serve(serving, l)
	cancel()
	return errors.Join(err, g.Wait())
}
