// Package stack wires the whole kjobs pipeline into one process for
// `make run`: the API, an in-process Broker applying the Triggers' delivery
// spec, the dispatcher with its dead-letter path, a runner, a scheduler and
// the bindings the Broker matches events against.
// With KJOBS_RUNNER=kubernetes the attempts are Jobs and the schedules
// PingSources in the cluster of KUBECONFIG; otherwise nothing but this
// process and the processor binary is needed.
package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	eventingclient "knative.dev/eventing/pkg/client/clientset/versioned"

	"github.com/kjobs/kjobs/internal/api"
	localbinding "github.com/kjobs/kjobs/internal/binding/local"
	"github.com/kjobs/kjobs/internal/catalog"
	"github.com/kjobs/kjobs/internal/cluster"
	"github.com/kjobs/kjobs/internal/delivery"
	"github.com/kjobs/kjobs/internal/dispatch"
	"github.com/kjobs/kjobs/internal/httpserver"
	"github.com/kjobs/kjobs/internal/metrics"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/runner/kube"
	"github.com/kjobs/kjobs/internal/runner/local"
	"github.com/kjobs/kjobs/internal/schedule"
	localschedule "github.com/kjobs/kjobs/internal/schedule/local"
	"github.com/kjobs/kjobs/internal/schedule/ping"
	"github.com/kjobs/kjobs/internal/store"
	"github.com/kjobs/kjobs/internal/ui"
)

// Listeners are where the stack listens, for a caller that opened them
// itself, such as a test on ports the system chose.
type Listeners struct {
	// API defaults to cfg.Host and cfg.Port.
	API net.Listener
	// Broker is the in-process Broker's ingress. It defaults to loopback
	// and cfg.BrokerPort.
	Broker net.Listener
}

// Run runs the stack until ctx ends, listening on ls.
func Run(ctx context.Context, cfg Config, ls Listeners, log *slog.Logger) error {
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	rdb, closeRedis, err := redisClient(cfg.RedisURL, log)
	if err != nil {
		return err
	}
	defer closeRedis()
	// The API and the dispatcher share one registry, as they share this
	// process: the API's /metrics serves both.
	reg := prometheus.NewRegistry()
	clients := metrics.Register(reg)
	rdb.AddHook(clients.Redis())
	st := store.New(rdb, store.Options{Retention: cfg.Retention})

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)

	// The dispatcher listens on a loopback port of its own, as its own
	// Knative Service would, so that delivery goes through real HTTP.
	dispatchListener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	data, err := cfg.functions()
	if err != nil {
		dispatchListener.Close()
		return fmt.Errorf("stack: %w", err)
	}
	// The local runner has no container runtime: a function with an image
	// runs only through its local binary.
	functions := catalog.New(cfg.Runner == RunnerLocal)
	if cfg.Runner == RunnerLocal {
		if err := functions.Set(data); err != nil {
			dispatchListener.Close()
			return fmt.Errorf("stack: KJOBS_FUNCTIONS_FILE %s: %w", cfg.FunctionsFile, err)
		}
	}
	run, logs, schedules, closeRunner, err := backends(ctx, cfg, functions, clients, log)
	if err != nil {
		dispatchListener.Close()
		return err
	}
	defer closeRunner()
	if kr, ok := run.(*kube.Runner); ok {
		// Jobs run what the cluster's functions ConfigMap declares, so the
		// catalog follows it, as the API's and the dispatcher's do.
		functions.Update(kr.Functions(), log)
		g.Go(func() error {
			return kr.WatchFunctions(ctx, func(data map[string]string) { functions.Update(data, log) })
		})
	}

	// Bindings are the in-process Broker's Triggers, under either runner:
	// events reach this stack through that Broker, which matches them with
	// bindings.Match.
	bindings := localbinding.New()

	dispatchURL := &url.URL{Scheme: "http", Host: dispatchListener.Addr().String(), Path: "/"}
	broker, err := delivery.NewLocal(dispatchURL, dispatchURL.JoinPath(dispatch.DeadLetterPath), delivery.Options{Log: log})
	if err != nil {
		dispatchListener.Close()
		return fmt.Errorf("stack: %w", err)
	}
	if schedules == nil {
		local := localschedule.New(broker)
		g.Go(func() error { return local.Run(ctx) })
		schedules = local
	}

	d := dispatch.New(st, run, log.With("component", "dispatcher"))
	d.SetBindings(bindings)
	d.SetFunctions(functions)
	caps, err := cfg.caps(data)
	if err != nil {
		dispatchListener.Close()
		return fmt.Errorf("stack: %w", err)
	}
	if err := st.SetCaps(ctx, caps); err != nil {
		dispatchListener.Close()
		return fmt.Errorf("stack: %w", err)
	}
	dh := d.Handler(reg)
	// A delivery waits for its attempt: the write timeout must outlast the
	// longest job, as the dispatcher's Knative Service timeout does.
	dispatchServer := httpserver.New(dh, httpserver.Timeouts{Write: cfg.JobDeadline + time.Minute, Shutdown: 5 * time.Second}, log)

	var auth *api.Tokens
	if cfg.TokensFile != "" {
		if auth, err = api.LoadTokens(cfg.TokensFile); err != nil {
			dispatchListener.Close()
			return fmt.Errorf("stack: KJOBS_AUTH_TOKENS_FILE: %w", err)
		}
	} else {
		log.Warn("API auth is off: no KJOBS_AUTH_TOKENS_FILE; listening on loopback only")
	}
	apiListener := ls.API
	if apiListener == nil {
		if apiListener, err = net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))); err != nil {
			dispatchListener.Close()
			return fmt.Errorf("stack: %w", err)
		}
	}
	// The ingress has no auth, as a Broker's has none: it listens on
	// loopback only.
	brokerListener := ls.Broker
	if brokerListener == nil {
		if brokerListener, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.BrokerPort))); err != nil {
			dispatchListener.Close()
			apiListener.Close()
			return fmt.Errorf("stack: KJOBS_BROKER_PORT: %w", err)
		}
	}
	brokerServer := httpserver.New(&ingress{
		broker: broker, bindings: bindings, dispatcher: dispatchURL, log: log.With("component", "broker"),
	}, httpserver.Timeouts{}, log)
	apiServer := httpserver.New(ui.Mount(api.New(api.Config{
		Store: st, Sender: broker, Schedules: schedules, Bindings: bindings, Functions: functions,
		JobDeadline: cfg.JobDeadline, Auth: auth, Logs: logs, Registry: reg,
		Log: log.With("component", "api"),
	}), ui.Config{Auth: auth, Log: log.With("component", "ui")}), httpserver.Timeouts{}, log)

	log.Info("kjobs is running", "api", "http://"+apiListener.Addr().String(), "dashboard", "http://"+apiListener.Addr().String()+"/ui/", "broker", "http://"+brokerListener.Addr().String(),
		"runner", cfg.Runner, "redis", redisName(cfg.RedisURL))
	g.Go(func() error { return broker.Run(ctx) })
	g.Go(func() error { return d.Reconcile(ctx) })
	g.Go(func() error { return d.Sweep(ctx, broker, cfg.SweepAfter) })
	g.Go(func() error { return d.HandOff(ctx, broker) })
	g.Go(func() error { return d.Cancels(ctx) })
	g.Go(func() error { return dispatchServer.Serve(ctx, dispatchListener) })
	g.Go(func() error { return apiServer.Serve(ctx, apiListener) })
	g.Go(func() error { return brokerServer.Serve(ctx, brokerListener) })
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// backends returns the runner, the reader of its attempts' logs and, in a
// cluster, the schedule store; a nil store means the local scheduler, which
// needs the broker to send to.
func backends(ctx context.Context, cfg Config, functions *catalog.Catalog, clients *metrics.Clients, log *slog.Logger) (runner.Runner, runner.Logs, schedule.Store, func(), error) {
	if cfg.Runner == RunnerLocal {
		r := local.New(local.Config{Processor: cfg.Processor, Functions: functions, Deadline: cfg.JobDeadline})
		return r, r, nil, r.Close, nil
	}
	rest, namespace, err := cluster.Config(cfg.Namespace)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("stack: KUBECONFIG: %w", err)
	}
	rest.Wrap(clients.APIServer)
	kc, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("stack: %w", err)
	}
	ec, err := eventingclient.NewForConfig(rest)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("stack: %w", err)
	}
	r, err := kube.New(ctx, kc, kube.Config{
		Namespace: namespace, Image: cfg.ProcessorImage, ServiceAccount: cfg.JobServiceAccount,
		Deadline: cfg.JobDeadline, StartDeadline: cfg.StartDeadline, TTL: cfg.JobTTL, Grace: cfg.JobGrace, Log: log,
	})
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("stack: %w", err)
	}
	log.Info("running attempts as Jobs and schedules as PingSources", "server", rest.Host, "namespace", namespace)
	return r, kube.NewLogs(kc, namespace), ping.New(ec, ping.Config{Namespace: namespace, Broker: cfg.Broker}), func() {}, nil
}

// redisClient connects to url, or starts an embedded Redis when url is empty.
func redisClient(redisURL string, log *slog.Logger) (*redis.Client, func(), error) {
	if redisURL == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return nil, nil, fmt.Errorf("stack: embedded redis: %w", err)
		}
		log.Info("using an embedded in-memory Redis; set REDIS_URL to keep state", "addr", mr.Addr())
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		return rdb, func() { rdb.Close(); mr.Close() }, nil
	}
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("stack: REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(opts)
	return rdb, func() { rdb.Close() }, nil
}

// redisName describes the Redis in use without its password.
func redisName(redisURL string) string {
	if redisURL == "" {
		return "embedded"
	}
	u, err := url.Parse(redisURL)
	if err != nil {
		return "unparsable REDIS_URL"
	}
	return u.Redacted()
}
