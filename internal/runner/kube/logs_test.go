package kube

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
)

// TestLogs opens attempts' logs on the real control plane. kwok plays the
// kubelet of the pods but serves no kubelet API, so the API server cannot
// fetch a started container's log (it answers that the node has no address
// to reach it at): the test checks that Logs finds the right pod and asks
// the API server for its log, and how it maps what it finds, rather than
// log text.
func TestLogs(t *testing.T) {
	t.Parallel()
	// "echo" pods are placed nowhere, so they stay Pending.
	e := setup(t, map[string]string{"echo": nowhere}, nil)
	ctx := timeout(t, 2*time.Minute)
	l := NewLogs(e.client, e.ns)
	id := uuid.NewString()
	for _, spec := range []runner.Spec{
		{JobID: id, Attempt: 1, Function: "sample"},
		{JobID: id, Attempt: 2, Function: "echo"},
	} {
		if _, err := e.r.Start(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	if a, err := e.r.Wait(ctx, id, 1); err != nil || a.Outcome != job.OutcomeSucceeded {
		t.Fatalf("Wait() = %+v, %v; want attempt 1 succeeded", a, err)
	}
	pods := func(n int) int {
		list, err := e.client.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: labels.Set{labelJobName: runner.Name(id, n)}.String()})
		if err != nil {
			t.Fatal(err)
		}
		return len(list.Items)
	}
	eventually(t, ctx, "attempt 2's pod", func() bool { return pods(2) == 1 })

	t.Run("finished pod", func(t *testing.T) {
		_, err := l.Open(ctx, id, 1, false)
		// The API server's own answer, for the pod of attempt 1: it found
		// the pod and asked its node.
		var status apierrors.APIStatus
		if !errors.As(err, &status) || !strings.Contains(err.Error(), "pod "+runner.Name(id, 1)+"-") ||
			!strings.Contains(err.Error(), "no preferred addresses found") {
			t.Errorf("Open() = %v, want the API server's answer that kwok's node serves no logs, for attempt 1's pod", err)
		}
		if errors.Is(err, runner.ErrLogGone) || errors.Is(err, runner.ErrNotFound) {
			t.Errorf("Open() = %v: a log that cannot be fetched now is neither gone nor unknown", err)
		}
	})
	t.Run("pending pod", func(t *testing.T) {
		log, err := l.Open(ctx, id, 2, false)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(log); err != nil || len(b) != 0 {
			t.Errorf("Open() of a pod that has not started = %q, %v; want nothing written yet", b, err)
		}
		log.Close()
		short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		defer cancel()
		if _, err := l.Open(short, id, 2, true); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Open(follow) of a pod that never starts = %v, want it to wait until %v", err, context.DeadlineExceeded)
		}
	})
	t.Run("no pod", func(t *testing.T) {
		if _, err := l.Open(ctx, id, 3, false); !errors.Is(err, runner.ErrLogGone) {
			t.Errorf("Open() of an attempt without a pod = %v, want %v", err, runner.ErrLogGone)
		}
	})
	t.Run("deleted pod", func(t *testing.T) {
		if err := e.client.CoreV1().Pods(e.ns).DeleteCollection(ctx, metav1.DeleteOptions{},
			metav1.ListOptions{LabelSelector: labels.Set{labelJobName: runner.Name(id, 1)}.String()}); err != nil {
			t.Fatal(err)
		}
		eventually(t, ctx, "attempt 1's pod gone", func() bool { return pods(1) == 0 })
		if _, err := l.Open(ctx, id, 1, true); !errors.Is(err, runner.ErrLogGone) {
			t.Errorf("Open() once the pod is deleted = %v, want %v", err, runner.ErrLogGone)
		}
	})
}
