package kube

import (
	"context"
	"fmt"
	"path"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/processor/function"
)

// Where a Job's pod finds an event too large for its environment: a Secret
// named like the Job, holding the event under eventKey, mounted read-only
// at eventDir, as Knative's JobSink mounts its events.
const (
	eventVolume = "kjobs-event"
	eventDir    = "/etc/kjobs-event"
	eventKey    = "event"
)

// withEvent gives the Job's container the event that started its job: in
// its environment when it is small enough, else from the Secret that
// eventSecret makes, mounted as a file. The pod cannot start before that
// Secret exists; the kubelet retries the mount until it does.
func withEvent(j *batchv1.Job, event []byte) {
	if event == nil {
		return
	}
	c := &j.Spec.Template.Spec.Containers[0]
	if len(event) <= runner.MaxEventEnv {
		c.Env = append(c.Env, corev1.EnvVar{Name: function.EnvEvent, Value: string(event)})
		return
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: function.EnvEventFile, Value: path.Join(eventDir, eventKey)})
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: eventVolume, MountPath: eventDir, ReadOnly: true})
	j.Spec.Template.Spec.Volumes = append(j.Spec.Template.Spec.Volumes, corev1.Volume{
		Name:         eventVolume,
		VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: j.Name}},
	})
}

// eventSecret is the Secret holding the event of Job j, which owns it: the
// garbage collector deletes it with the Job, whether the Job's TTL, a
// cancel or kubectl removes it. It is a Secret rather than a ConfigMap
// because an event may carry what its source considers private.
func eventSecret(j *batchv1.Job, event []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      j.Name,
			Namespace: j.Namespace,
			Labels: map[string]string{
				labelJobID:     j.Labels[labelJobID],
				labelAttempt:   j.Labels[labelAttempt],
				labelManagedBy: managedBy,
			},
			// Not blocking the Job's deletion: that would need the right to
			// set finalizers on Jobs, which the dispatcher has no need of.
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: batchv1.SchemeGroupVersion.String(), Kind: "Job", Name: j.Name, UID: j.UID,
				Controller: new(true), BlockOwnerDeletion: new(false),
			}},
		},
		Immutable: new(true),
		Type:      corev1.SecretTypeOpaque,
		Data:      map[string][]byte{eventKey: event},
	}
}

// ensureEventSecret creates the Secret of Job j's event when the event is
// too large for the environment. It runs whether the Job was created or
// adopted, so that a dispatcher that died between the two creates is made
// good by the next delivery.
func (r *Runner) ensureEventSecret(ctx context.Context, j *batchv1.Job, event []byte) error {
	if len(event) <= runner.MaxEventEnv {
		return nil
	}
	_, err := r.client.CoreV1().Secrets(j.Namespace).Create(ctx, eventSecret(j, event), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("Secret of the event of Job %s: %w", j.Name, err)
	}
	return nil
}
