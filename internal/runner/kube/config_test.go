package kube

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestConfigWithDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   Config
		want Config
	}{{
		name: "unset fields get their defaults",
		in:   Config{Namespace: "kjobs", Image: "processor"},
		want: Config{Namespace: "kjobs", Image: "processor", ServiceAccount: "kjobs-job", Deadline: 10 * time.Minute, StartDeadline: 5 * time.Minute, TTL: 24 * time.Hour, Grace: 10 * time.Minute, FunctionsConfigMap: "kjobs-functions"},
	}, {
		name: "set fields are kept",
		in:   Config{Namespace: "n", Image: "i", ServiceAccount: "sa", Deadline: time.Minute, StartDeadline: time.Second, TTL: 2 * time.Hour, Grace: time.Minute, FunctionsConfigMap: "cm"},
		want: Config{Namespace: "n", Image: "i", ServiceAccount: "sa", Deadline: time.Minute, StartDeadline: time.Second, TTL: 2 * time.Hour, Grace: time.Minute, FunctionsConfigMap: "cm"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.WithDefaults()
			if got.Log == nil {
				t.Error("WithDefaults() left Log nil")
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(Config{}, "Log")); diff != "" {
				t.Errorf("WithDefaults() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	valid := Config{Namespace: "kjobs", Image: "processor"}.WithDefaults()
	tests := []struct {
		name   string
		change func(*Config)
		// want lists what the error must say; none means no error.
		want []string
	}{
		{name: "defaults with namespace and image", change: func(*Config) {}},
		{name: "no namespace", change: func(c *Config) { c.Namespace = "" }, want: []string{"Namespace (KJOBS_NAMESPACE): required"}},
		{name: "bad namespace", change: func(c *Config) { c.Namespace = "Kjobs_NS" }, want: []string{"Namespace (KJOBS_NAMESPACE)", `"Kjobs_NS" is not a namespace name`}},
		{name: "no image", change: func(c *Config) { c.Image = "" }, want: []string{"Image (KJOBS_PROCESSOR_IMAGE): required"}},
		{name: "bad service account", change: func(c *Config) { c.ServiceAccount = "Job SA" }, want: []string{"ServiceAccount:", `"Job SA" is not a service account name`}},
		{name: "deadline under a second", change: func(c *Config) { c.Deadline = 500 * time.Millisecond }, want: []string{"Deadline (KJOBS_JOB_DEADLINE)", "500ms"}},
		{name: "negative start deadline", change: func(c *Config) { c.StartDeadline = -time.Second }, want: []string{"StartDeadline (KJOBS_START_DEADLINE)", "-1s"}},
		{name: "negative TTL", change: func(c *Config) { c.TTL = -time.Second }, want: []string{"TTL (KJOBS_JOB_TTL)", "-1s"}},
		{name: "negative grace", change: func(c *Config) { c.Grace = -time.Second }, want: []string{"Grace (KJOBS_JOB_GRACE)", "-1s"}},
		{name: "TTL past int32 seconds", change: func(c *Config) { c.TTL = 100 * 365 * 24 * time.Hour }, want: []string{"TTL (KJOBS_JOB_TTL)", "longer than ttlSecondsAfterFinished can express"}},
		{name: "bad ConfigMap name", change: func(c *Config) { c.FunctionsConfigMap = "Functions!" }, want: []string{"FunctionsConfigMap (KJOBS_FUNCTIONS_CONFIGMAP)"}},
		{
			name:   "every bad field is reported",
			change: func(c *Config) { c.Namespace, c.Image = "", "" },
			want:   []string{"KJOBS_NAMESPACE", "KJOBS_PROCESSOR_IMAGE"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.change(&c)
			err := c.validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("validate() = nil, want an error saying %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("validate() = %q, want it to say %q", err, w)
				}
			}
		})
	}
}

func TestSeconds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   time.Duration
		want int64
	}{
		{time.Second, 1},
		{1500 * time.Millisecond, 2},
		{10 * time.Minute, 600},
	}
	for _, tt := range tests {
		if got := seconds(tt.in); got != tt.want {
			t.Errorf("seconds(%v) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
