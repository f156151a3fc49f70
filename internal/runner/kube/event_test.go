package kube

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/processor/function"
)

func envOf(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

// TestEventGoesWithJob checks how a function gets the event that started
// its job, on the real control plane: a small event in its environment; a
// large one in a Secret that the Job owns and its pod mounts, which a
// delivery that adopts the Job creates again if it is missing, and which
// the garbage collector deletes with the Job.
func TestEventGoesWithJob(t *testing.T) {
	t.Parallel()
	e := setup(t, nil, nil)
	ctx := timeout(t, 2*time.Minute)
	small := []byte(`{"specversion":"1.0","id":"17","source":"/photos","type":"com.example.object.created"}`)
	large := []byte(`{"specversion":"1.0","id":"18","source":"/photos","type":"com.example.object.created","data":"` +
		strings.Repeat("x", runner.MaxEventEnv) + `"}`)

	id := uuid.NewString()
	if _, err := e.r.Start(ctx, runner.Spec{JobID: id, Attempt: 1, Function: "echo", Event: small}); err != nil {
		t.Fatal(err)
	}
	j, err := e.client.BatchV1().Jobs(e.ns).Get(ctx, runner.Name(id, 1), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := j.Spec.Template.Spec.Containers[0]
	if v, _ := envOf(c, function.EnvEvent); v != string(small) {
		t.Errorf("%s = %q, want the event", function.EnvEvent, v)
	}
	if _, err := e.client.CoreV1().Secrets(e.ns).Get(ctx, j.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a small event has a Secret: %v", err)
	}

	id = uuid.NewString()
	spec := runner.Spec{JobID: id, Attempt: 1, Function: "echo", Event: large}
	if _, err := e.r.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if j, err = e.client.BatchV1().Jobs(e.ns).Get(ctx, runner.Name(id, 1), metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	c = j.Spec.Template.Spec.Containers[0]
	if _, ok := envOf(c, function.EnvEvent); ok {
		t.Errorf("a large event is in %s too", function.EnvEvent)
	}
	if v, _ := envOf(c, function.EnvEventFile); v != "/etc/kjobs-event/event" {
		t.Errorf("%s = %q, want /etc/kjobs-event/event", function.EnvEventFile, v)
	}
	vols := j.Spec.Template.Spec.Volumes
	if len(vols) != 1 || vols[0].Secret == nil || vols[0].Secret.SecretName != j.Name || len(c.VolumeMounts) != 1 || !c.VolumeMounts[0].ReadOnly {
		t.Errorf("volumes %+v, mounts %+v; want the Secret %s mounted read-only", vols, c.VolumeMounts, j.Name)
	}
	secret := func() *corev1.Secret {
		t.Helper()
		s, err := e.client.CoreV1().Secrets(e.ns).Get(ctx, j.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the event's Secret: %v", err)
		}
		return s
	}
	s := secret()
	if !bytes.Equal(s.Data["event"], large) {
		t.Errorf("the Secret holds %d bytes, want the %d of the event", len(s.Data["event"]), len(large))
	}
	if !metav1.IsControlledBy(s, j) {
		t.Errorf("the Secret's owners are %+v, want Job %s", s.OwnerReferences, j.Name)
	}

	// A dispatcher that died between the Job and its Secret: the next
	// delivery adopts the Job and makes the Secret.
	if err := e.client.CoreV1().Secrets(e.ns).Delete(ctx, j.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	secret()

	background := metav1.DeletePropagationBackground
	if err := e.client.BatchV1().Jobs(e.ns).Delete(ctx, j.Name, metav1.DeleteOptions{PropagationPolicy: &background}); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "the garbage collector deletes the Secret with its Job", func() bool {
		_, err := e.client.CoreV1().Secrets(e.ns).Get(ctx, j.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}

func TestWithEvent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		event   []byte
		env     string
		volumes int
	}{
		{"no event", nil, "", 0},
		{"an event that fits the environment", bytes.Repeat([]byte("x"), runner.MaxEventEnv), function.EnvEvent, 0},
		{"one byte more", bytes.Repeat([]byte("x"), runner.MaxEventEnv+1), function.EnvEventFile, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := &batchv1.Job{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{}}}}}}
			withEvent(j, tc.event)
			c := j.Spec.Template.Spec.Containers[0]
			var names []string
			for _, e := range c.Env {
				names = append(names, e.Name)
			}
			if got := strings.Join(names, ","); got != tc.env {
				t.Errorf("env %s, want %s", got, tc.env)
			}
			if len(j.Spec.Template.Spec.Volumes) != tc.volumes || len(c.VolumeMounts) != tc.volumes {
				t.Errorf("%d volumes, %d mounts; want %d", len(j.Spec.Template.Spec.Volumes), len(c.VolumeMounts), tc.volumes)
			}
		})
	}
}
