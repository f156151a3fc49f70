// Command api serves the kjobs HTTP API, and its dashboard at /ui/, as a
// Knative Service: it records jobs in Redis, sends their events to the
// Broker at K_SINK, keeps schedules as PingSources and bindings as Triggers
// in its namespace and serves attempts' logs from their pods' logs there.
// It checks every request against the declared functions: the built-in
// ones and those of the functions ConfigMap, which it watches.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"k8s.io/client-go/kubernetes"
	eventingclient "knative.dev/eventing/pkg/client/clientset/versioned"
	"knative.dev/pkg/apis"

	"github.com/kjobs/kjobs/internal/api"
	"github.com/kjobs/kjobs/internal/binding/trigger"
	"github.com/kjobs/kjobs/internal/catalog"
	"github.com/kjobs/kjobs/internal/cluster"
	"github.com/kjobs/kjobs/internal/delivery"
	"github.com/kjobs/kjobs/internal/httpserver"
	"github.com/kjobs/kjobs/internal/metrics"
	kuberunner "github.com/kjobs/kjobs/internal/runner/kube"
	"github.com/kjobs/kjobs/internal/schedule/ping"
	"github.com/kjobs/kjobs/internal/store"
	"github.com/kjobs/kjobs/internal/ui"
)

type envConfig struct {
	// Port to listen on; Knative sets it. Defaults to 8080.
	Port int `envconfig:"PORT" default:"8080"`
	// Host is the address to listen on. Defaults to every interface, as a
	// pod needs; `make cluster` sets 127.0.0.1.
	Host string `envconfig:"KJOBS_HOST"`
	// RedisURL is where job state lives.
	RedisURL string `envconfig:"REDIS_URL" required:"true"`
	// Sink is the Broker's address, injected by the SinkBinding.
	Sink string `envconfig:"K_SINK" required:"true"`
	// TokensFile holds the accepted bearer tokens, one per line.
	TokensFile string `envconfig:"KJOBS_AUTH_TOKENS_FILE" default:"/var/run/secrets/kjobs/tokens"`
	// AuthDisabled serves every route without a token. For local use only.
	AuthDisabled bool `envconfig:"KJOBS_AUTH_DISABLED" default:"false"`
	// JobDeadline is the dispatcher's bound on one attempt: a job's timeout
	// may not be longer. Set it to the dispatcher's KJOBS_JOB_DEADLINE.
	JobDeadline time.Duration `envconfig:"KJOBS_JOB_DEADLINE" default:"10m"`
	// Retention is how long finished jobs are kept.
	Retention time.Duration `envconfig:"KJOBS_RETENTION" default:"168h"`
	// Namespace holds the PingSources, the bindings' Triggers and the
	// Jobs whose pods' logs GET /jobs/<id>/logs serves (the dispatcher's
	// KJOBS_NAMESPACE). Defaults to the pod's own namespace.
	Namespace string `envconfig:"KJOBS_NAMESPACE"`
	// Broker is the PingSources' sink and the bindings' Triggers' Broker.
	Broker string `envconfig:"KJOBS_BROKER" default:"kjobs"`
	// Dispatcher is the absolute URL the bindings' Triggers deliver to,
	// for a dispatcher that is not the Knative Service kjobs-dispatcher of
	// the namespace, which they deliver to by default.
	Dispatcher string `envconfig:"KJOBS_DISPATCHER_URL"`
	// FunctionsConfigMap declares the functions beside the built-in ones,
	// in Namespace. Defaults to kjobs-functions.
	FunctionsConfigMap string `envconfig:"KJOBS_FUNCTIONS_CONFIGMAP" default:"kjobs-functions"`
}

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("api stopped", "error", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var env envConfig
	if err := envconfig.Process("", &env); err != nil {
		return err
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
	sender, err := delivery.NewHTTPSender(env.Sink)
	if err != nil {
		return err
	}
	restCfg, namespace, err := cluster.Config(env.Namespace)
	if err != nil {
		return err
	}
	restCfg.Wrap(clients.APIServer)
	eventing, err := eventingclient.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	bindings := trigger.Config{Namespace: namespace, Broker: env.Broker}
	if env.Dispatcher != "" {
		u, err := apis.ParseURL(env.Dispatcher)
		if err != nil || !u.URL().IsAbs() {
			return fmt.Errorf("KJOBS_DISPATCHER_URL %q: want an absolute URL", env.Dispatcher)
		}
		bindings.Dispatcher.URI = u
	}
	kube, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	functions := catalog.New(false)
	if err := catalog.Watch(ctx, kube, namespace, env.FunctionsConfigMap, functions, log); err != nil {
		return err
	}
	var auth *api.Tokens
	if env.AuthDisabled {
		log.Warn("API auth is disabled by KJOBS_AUTH_DISABLED: every route answers without a token")
	} else if auth, err = api.LoadTokens(env.TokensFile); err != nil {
		return err
	}
	handler := ui.Mount(api.New(api.Config{
		Store:       store.New(rdb, store.Options{Retention: env.Retention}),
		Sender:      sender,
		Schedules:   ping.New(eventing, ping.Config{Namespace: namespace, Broker: env.Broker}),
		Bindings:    trigger.New(eventing, bindings),
		Functions:   functions,
		JobDeadline: env.JobDeadline,
		Logs:        kuberunner.NewLogs(kube, namespace),
		Auth:        auth,
		Registry:    reg,
		Log:         log,
	}), ui.Config{Auth: auth, Log: log.With("component", "ui")})
	l, err := net.Listen("tcp", net.JoinHostPort(env.Host, strconv.Itoa(env.Port)))
	if err != nil {
		return err
	}
	log.Info("api listening", "addr", l.Addr().String())
	return httpserver.New(handler, httpserver.Timeouts{}, log).Serve(ctx, l)
}
