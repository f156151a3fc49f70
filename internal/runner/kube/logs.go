package kube

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/kjobs/kjobs/internal/runner"
)

// pendingPoll is how often a followed attempt whose pod has not started is
// looked at again: the reader may get and list pods but not watch them, so
// that the API's role grants no more than reading logs needs.
const pendingPoll = time.Second

// Logs reads attempts' output from their pods' logs through the API
// server (pods/log), so that the API can serve it without a runner and
// without access to Jobs. It needs, in its namespace, get and list on pods
// and get on pods/log.
type Logs struct {
	client    kubernetes.Interface
	namespace string
}

var _ runner.Logs = (*Logs)(nil)

// NewLogs returns a reader of the logs of the attempts run in namespace.
func NewLogs(client kubernetes.Interface, namespace string) *Logs {
	return &Logs{client: client, namespace: namespace}
}

// Open returns the log of the processor container of attempt n's pod: the
// pod of the Job runner.Name(jobID, n), the newest if the Job controller
// made several (a disrupted pod is replaced within its Job). With follow it
// streams until the container ends or ctx is done, waiting first for a pod
// that has not started; without, a pod that has not started has written
// nothing yet, and its log is empty.
//
// A Job's pods go with it, Config.Grace after its outcome is recorded. An
// attempt with no pod therefore gets runner.ErrLogGone: whether a Job of that
// name ever existed is not knowable from its pods, and the reader may not
// read Jobs; its callers ask only for attempts the job's record holds. Open
// never returns runner.ErrNotFound. (For a moment after an attempt starts,
// before the Job controller creates its pod, ErrLogGone is early rather than
// wrong: the attempt has written nothing yet.)
func (l *Logs) Open(ctx context.Context, jobID string, n int, follow bool) (io.ReadCloser, error) {
	name := runner.Name(jobID, n)
	pod, err := l.pod(ctx, name)
	if err != nil {
		return nil, err
	}
	for pod.Status.Phase == corev1.PodPending {
		if !follow {
			return io.NopCloser(strings.NewReader("")), nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("kube.Logs.Open: %s: pod %s has not started: %w", name, pod.Name, ctx.Err())
		case <-time.After(pendingPoll):
		}
		pod, err = l.client.CoreV1().Pods(l.namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("kube.Logs.Open: %s: pod deleted before it started: %w", name, runner.ErrLogGone)
		}
		if err != nil {
			return nil, fmt.Errorf("kube.Logs.Open: %s: %w", name, err)
		}
	}
	stream, err := l.client.CoreV1().Pods(l.namespace).GetLogs(pod.Name, &corev1.PodLogOptions{Container: containerName, Follow: follow}).Stream(ctx)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("kube.Logs.Open: %s: pod %s deleted: %w", name, pod.Name, runner.ErrLogGone)
	}
	if err != nil {
		return nil, fmt.Errorf("kube.Logs.Open: %s: pod %s: %w", name, pod.Name, err)
	}
	return stream, nil
}

// pod returns the newest pod of the Job named job.
func (l *Logs) pod(ctx context.Context, job string) (*corev1.Pod, error) {
	list, err := l.client.CoreV1().Pods(l.namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.Set{labelJobName: job}.String(),
	})
	if err != nil {
		return nil, fmt.Errorf("kube.Logs.Open: %s: %w", job, err)
	}
	if len(list.Items) == 0 {
		return nil, fmt.Errorf("kube.Logs.Open: %s: no pod: %w", job, runner.ErrLogGone)
	}
	newest := &list.Items[0]
	for i := range list.Items[1:] {
		p := &list.Items[i+1]
		if newest.CreationTimestamp.Before(&p.CreationTimestamp) ||
			newest.CreationTimestamp.Equal(&p.CreationTimestamp) && p.Name > newest.Name {
			newest = p
		}
	}
	return newest, nil
}
