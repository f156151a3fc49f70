package stack

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/kjobs/kjobs/internal/dispatch"
	"github.com/kjobs/kjobs/internal/runner/kube"
	"github.com/kjobs/kjobs/internal/store"
)

// Config configures the local stack. Each field is read from the
// environment variable in its tag.
type Config struct {
	// Host is the address the API listens on. Defaults to 127.0.0.1; any
	// other address needs KJOBS_AUTH_TOKENS_FILE.
	Host string `envconfig:"KJOBS_HOST" default:"127.0.0.1"`
	// Port is the API's port. Defaults to 8080.
	Port int `envconfig:"PORT" default:"8080"`
	// BrokerPort is the port of the in-process Broker's ingress, on
	// loopback: CloudEvents sent there run the functions of the bindings
	// that select them, as events sent to the Broker do in a cluster.
	// Defaults to 8081.
	BrokerPort int `envconfig:"KJOBS_BROKER_PORT" default:"8081"`
	// RedisURL is the Redis to keep state in, as redis://[:password@]host:port/db.
	// Defaults to an embedded in-memory Redis, lost when the stack stops.
	RedisURL string `envconfig:"REDIS_URL"`
	// TokensFile holds the API's bearer tokens, one per line. Defaults to
	// none: auth is off, which the stack allows only on loopback.
	TokensFile string `envconfig:"KJOBS_AUTH_TOKENS_FILE"`
	// Retention is how long finished jobs are kept. Defaults to 168h.
	Retention time.Duration `envconfig:"KJOBS_RETENTION" default:"168h"`
	// Runner is where attempts run: "local" (child processes of the
	// processor binary) or "kubernetes" (batch/v1 Jobs in the cluster of
	// KUBECONFIG, with schedules as PingSources). Defaults to local.
	Runner string `envconfig:"KJOBS_RUNNER" default:"local"`
	// Processor is the processor binary the local runner runs. Defaults to
	// "processor" beside this binary.
	Processor string `envconfig:"KJOBS_PROCESSOR"`
	// JobDeadline bounds one attempt. Defaults to 10m.
	JobDeadline time.Duration `envconfig:"KJOBS_JOB_DEADLINE" default:"10m"`
	// Namespace is where the kubernetes runner creates Jobs and
	// PingSources. Defaults to KUBECONFIG's namespace, else default.
	Namespace string `envconfig:"KJOBS_NAMESPACE"`
	// ProcessorImage is the image of the kubernetes runner's Jobs.
	// Required with KJOBS_RUNNER=kubernetes.
	ProcessorImage string `envconfig:"KJOBS_PROCESSOR_IMAGE"`
	// JobServiceAccount is the service account of the kubernetes runner's
	// Jobs. Defaults to default, which every namespace has; the Jobs do
	// not mount its token.
	JobServiceAccount string `envconfig:"KJOBS_JOB_SERVICE_ACCOUNT" default:"default"`
	// StartDeadline is how long a Job's pod may stay unschedulable, or wait
	// with ErrImagePull or CreateContainerConfigError, before its attempt
	// fails with that reason (kubernetes runner). Defaults to 5m.
	StartDeadline time.Duration `envconfig:"KJOBS_START_DEADLINE" default:"5m"`
	// JobTTL is how long a finished Job whose outcome nothing recorded stays
	// in the cluster. Defaults to 24h.
	JobTTL time.Duration `envconfig:"KJOBS_JOB_TTL" default:"24h"`
	// JobGrace is how long a finished Job stays in the cluster once its
	// outcome is recorded. Defaults to 10m.
	JobGrace time.Duration `envconfig:"KJOBS_JOB_GRACE" default:"10m"`
	// SweepAfter is how long a job may wait for a delivery before its event
	// is sent again. Defaults to 2m.
	SweepAfter time.Duration `envconfig:"KJOBS_SWEEP_AFTER" default:"2m"`
	// Broker is the Broker that PingSources send to. Defaults to kjobs.
	Broker string `envconfig:"KJOBS_BROKER" default:"kjobs"`
	// MaxRunning caps how many jobs of every function run at once. Defaults
	// to 0, no cap.
	MaxRunning int `envconfig:"KJOBS_MAX_RUNNING" default:"0"`
	// FunctionsFile stands for the functions ConfigMap: one YAML mapping of
	// function name, or _default, to its entry, such as
	// `sleep: {maxRunning: 2}`. Defaults to none. It is read at start.
	FunctionsFile string `envconfig:"KJOBS_FUNCTIONS_FILE"`
}

// Runners.
const (
	RunnerLocal      = "local"
	RunnerKubernetes = "kubernetes"
)

func (c *Config) validate() error {
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("PORT %d: want 0 to 65535", c.Port)
	}
	if c.BrokerPort < 0 || c.BrokerPort > 65535 {
		return fmt.Errorf("KJOBS_BROKER_PORT %d: want 0 to 65535", c.BrokerPort)
	}
	if c.TokensFile == "" {
		ip := net.ParseIP(c.Host)
		if c.Host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("KJOBS_HOST %s is not loopback: set KJOBS_AUTH_TOKENS_FILE so that the API asks for a token", c.Host)
		}
	}
	if c.Retention <= 0 {
		return fmt.Errorf("KJOBS_RETENTION %s: want a positive duration", c.Retention)
	}
	if c.SweepAfter <= 0 {
		return fmt.Errorf("KJOBS_SWEEP_AFTER %s: want a positive duration", c.SweepAfter)
	}
	if c.MaxRunning < 0 {
		return fmt.Errorf("KJOBS_MAX_RUNNING %d: want 0 (no cap) or more", c.MaxRunning)
	}
	if c.JobDeadline <= 0 {
		return fmt.Errorf("KJOBS_JOB_DEADLINE %s: want a positive duration", c.JobDeadline)
	}
	switch c.Runner {
	case RunnerLocal:
		if c.Processor == "" {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("KJOBS_PROCESSOR: not set and this binary's path is unknown: %w", err)
			}
			c.Processor = filepath.Join(filepath.Dir(exe), "processor")
		}
		if _, err := os.Stat(c.Processor); err != nil {
			return fmt.Errorf("KJOBS_PROCESSOR: %w (build it with `make build`)", err)
		}
	case RunnerKubernetes:
		if c.ProcessorImage == "" {
			return fmt.Errorf("KJOBS_PROCESSOR_IMAGE is required with KJOBS_RUNNER=kubernetes")
		}
	default:
		return fmt.Errorf("KJOBS_RUNNER %q: want local or kubernetes", c.Runner)
	}
	return nil
}

// functions reads the functions file's entries: the data the functions
// ConfigMap would hold. Without a file there are none.
func (c *Config) functions() (map[string]string, error) {
	if c.FunctionsFile == "" {
		return nil, nil
	}
	data, err := kube.ReadFunctionsFile(c.FunctionsFile)
	if err != nil {
		return nil, fmt.Errorf("KJOBS_FUNCTIONS_FILE: %w", err)
	}
	return data, nil
}

// caps reads the concurrency caps: KJOBS_MAX_RUNNING and the maxRunning of
// the functions file's entries, data. Unlike the dispatcher, which skips a
// malformed ConfigMap entry so that one bad key stops nothing, the stack
// refuses to start: the file is the user's, at hand to fix.
func (c *Config) caps(data map[string]string) (store.Caps, error) {
	caps, err := dispatch.CapsFor(c.MaxRunning, data)
	if err != nil {
		return store.Caps{}, fmt.Errorf("KJOBS_FUNCTIONS_FILE %s: %w", c.FunctionsFile, err)
	}
	return caps, nil
}
