package kube

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Config says where and how the runner's Jobs run. The dispatcher fills it
// from its environment; the variable of each field is named in its comment.
type Config struct {
	// Namespace holds the Jobs, their pods and the functions ConfigMap: the
	// dispatcher's own namespace (KJOBS_NAMESPACE, from the downward API).
	// Required.
	Namespace string
	// Image is the processor image every Job runs
	// (KJOBS_PROCESSOR_IMAGE). Required.
	Image string
	// ServiceAccount is the service account of the Jobs' pods. It needs no
	// permissions: its token is not mounted. Defaults to "kjobs-job".
	ServiceAccount string
	// Deadline bounds how long one attempt may run, as the Job's
	// activeDeadlineSeconds, rounded up to whole seconds (KJOBS_JOB_DEADLINE).
	// Defaults to 10m.
	Deadline time.Duration
	// StartDeadline bounds how long an attempt's pod may wait to start
	// while unschedulable, or while its container waits with ErrImagePull
	// or CreateContainerConfigError, before the reconciler fails the
	// attempt with that reason (KJOBS_START_DEADLINE). ImagePullBackOff and
	// InvalidImageName fail it at once. Without it such a pod would hold
	// the attempt, and the delivery, for the whole Deadline. Defaults to 5m.
	StartDeadline time.Duration
	// TTL is how long a finished Job is kept when no dispatcher records its
	// outcome, as its ttlSecondsAfterFinished (KJOBS_JOB_TTL): a backstop
	// for an install whose dispatcher is gone. Defaults to 24h.
	TTL time.Duration
	// Grace is how long a finished Job is kept once its outcome is recorded
	// (KJOBS_JOB_GRACE), for a look with kubectl: the reconciler then
	// shortens its ttlSecondsAfterFinished. The store keeps the outcome and
	// the attempt number, so a redelivery after the Job is gone numbers on.
	// Defaults to 10m.
	Grace time.Duration
	// FunctionsConfigMap names the ConfigMap that places each function's
	// pods (KJOBS_FUNCTIONS_CONFIGMAP); see Placement. A missing ConfigMap
	// means no placement at all. Defaults to "kjobs-functions".
	FunctionsConfigMap string
	// Log is where the reconciler reports what it retries. Defaults to
	// slog.Default().
	Log *slog.Logger
}

// Defaults of Config's fields.
const (
	DefaultServiceAccount     = "kjobs-job"
	DefaultDeadline           = 10 * time.Minute
	DefaultStartDeadline      = 5 * time.Minute
	DefaultTTL                = 24 * time.Hour
	DefaultGrace              = 10 * time.Minute
	DefaultFunctionsConfigMap = "kjobs-functions"
)

// WithDefaults returns a copy of c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.ServiceAccount == "" {
		c.ServiceAccount = DefaultServiceAccount
	}
	if c.Deadline == 0 {
		c.Deadline = DefaultDeadline
	}
	if c.StartDeadline == 0 {
		c.StartDeadline = DefaultStartDeadline
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.FunctionsConfigMap == "" {
		c.FunctionsConfigMap = DefaultFunctionsConfigMap
	}
	return c
}

// validate reports every field that is unusable, each named with its
// environment variable so that the message says what to set.
func (c Config) validate() error {
	var errs []error
	bad := func(field, env, detail string) {
		if env != "" {
			field += " (" + env + ")"
		}
		errs = append(errs, fmt.Errorf("%s: %s", field, detail))
	}
	switch {
	case c.Namespace == "":
		bad("Namespace", "KJOBS_NAMESPACE", "required")
	default:
		if msgs := validation.IsDNS1123Label(c.Namespace); len(msgs) > 0 {
			bad("Namespace", "KJOBS_NAMESPACE", fmt.Sprintf("%q is not a namespace name: %s", c.Namespace, strings.Join(msgs, "; ")))
		}
	}
	if c.Image == "" {
		bad("Image", "KJOBS_PROCESSOR_IMAGE", "required")
	}
	if msgs := validation.IsDNS1123Subdomain(c.ServiceAccount); len(msgs) > 0 {
		bad("ServiceAccount", "", fmt.Sprintf("%q is not a service account name: %s", c.ServiceAccount, strings.Join(msgs, "; ")))
	}
	if c.Deadline < time.Second {
		bad("Deadline", "KJOBS_JOB_DEADLINE", fmt.Sprintf("%v is shorter than the 1s a Job's activeDeadlineSeconds can express", c.Deadline))
	}
	if c.StartDeadline < 0 {
		bad("StartDeadline", "KJOBS_START_DEADLINE", fmt.Sprintf("%v is negative", c.StartDeadline))
	}
	switch {
	case c.TTL < time.Second:
		bad("TTL", "KJOBS_JOB_TTL", fmt.Sprintf("%v is shorter than 1s; a Job removed as soon as it finishes may be gone before its outcome is recorded", c.TTL))
	case seconds(c.TTL) > math.MaxInt32:
		bad("TTL", "KJOBS_JOB_TTL", fmt.Sprintf("%v is longer than ttlSecondsAfterFinished can express (%d s)", c.TTL, math.MaxInt32))
	}
	if c.Grace < 0 {
		bad("Grace", "KJOBS_JOB_GRACE", fmt.Sprintf("%v is negative", c.Grace))
	}
	if msgs := validation.IsDNS1123Subdomain(c.FunctionsConfigMap); len(msgs) > 0 {
		bad("FunctionsConfigMap", "KJOBS_FUNCTIONS_CONFIGMAP", fmt.Sprintf("%q is not a ConfigMap name: %s", c.FunctionsConfigMap, strings.Join(msgs, "; ")))
	}
	return errors.Join(errs...)
}

// seconds rounds d up to whole seconds, so that a deadline is never shorter
// than asked.
func seconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}
