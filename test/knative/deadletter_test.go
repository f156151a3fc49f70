package knative

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/ptr"

	eventingduckv1 "knative.dev/eventing/pkg/apis/duck/v1"

	"github.com/kjobs/kjobs/internal/dispatch"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/testenv"
)

// noRetry changes the Triggers' delivery spec so that a delivery's first
// failure is its last: the channel dead-letters it at once.
func noRetry(d *eventingduckv1.DeliverySpec) { d.Retry = ptr.Int32(0) }

// TestDeadLetterAfterSuccess: a job whose Job succeeded is never failed by
// the dead letter of a delivery that failed.
func TestDeadLetterAfterSuccess(t *testing.T) {
	t.Parallel()

	// Redis is unavailable from before the Job completes until after the
	// delivery gave up: the dispatcher retries recording the attempt for
	// its 30 s budget and answers 503, which the Broker (retry 0 here, so
	// that this is the last delivery) dead-letters with
	// knativeerrorcode 503. The dead letter waits for Redis too; once
	// Redis is back it finds the Job succeeded and records that.
	t.Run("delivery answered 503 after the Job succeeded", func(t *testing.T) {
		t.Parallel()
		pool := testenv.NewPool()
		s := newStack(t, options{functions: map[string]string{"sleep": testenv.OnPool(pool)}, delivery: noRetry})
		ctx := timeout(t, 4*time.Minute)
		id := s.api.submit(ctx, sleep20)
		s.api.waitFor(ctx, id, "to run", func(j job.Job) bool { return j.Status == job.Running })

		s.redis.Pause(t)
		paused := time.Now()
		resumed := false
		t.Cleanup(func() {
			if !resumed {
				s.redis.Resume(t)
			}
		})
		s.addNode(ctx, pool)
		s.waitJob(ctx, runner.Name(id, 1), "to complete", func(j *batchv1.Job) bool { return testenv.JobOutcome(j) == batchv1.JobComplete })
		s.waitDeliveries(ctx, "receive", http.StatusServiceUnavailable, 1)
		t.Logf("the delivery was answered 503 %s into the outage", time.Since(paused).Round(time.Second))
		// The dead letter follows at once, and waits for Redis.
		time.Sleep(2 * time.Second)
		s.redis.Resume(t)
		resumed = true
		s.waitDeliveries(ctx, "dead-letter", http.StatusOK, 1)
		j := s.api.waitFinished(ctx, id)
		checkOneSuccess(t, s, id, j)
	})

	// The delivery times out (timeout PT3S here) while the attempt still
	// runs, and the channel dead-letters it: the job keeps running, and
	// the attempt's success succeeds it.
	t.Run("delivery timed out while the Job ran", func(t *testing.T) {
		t.Parallel()
		pool := testenv.NewPool()
		s := newStack(t, options{functions: map[string]string{"sleep": testenv.OnPool(pool)}, delivery: func(d *eventingduckv1.DeliverySpec) {
			noRetry(d)
			d.Timeout = ptr.String("PT3S")
		}})
		ctx := timeout(t, 3*time.Minute)
		id := s.api.submit(ctx, sleep20)
		s.waitDeliveries(ctx, "dead-letter", http.StatusOK, 1)
		if j := s.api.get(ctx, id); j.Status != job.Running || j.Error != "" {
			t.Errorf("job %s after the dead letter, its attempt running = %s with error %q, want running", id, j.Status, j.Error)
		}
		s.addNode(ctx, pool)
		checkOneSuccess(t, s, id, s.api.waitFinished(ctx, id))
	})

	// The dead letter the channel dispatcher would send, with its
	// extensions, posted by hand for a job that succeeded.
	t.Run("dead letter of a succeeded job", func(t *testing.T) {
		t.Parallel()
		s := newStack(t, options{})
		ctx := timeout(t, 2*time.Minute)
		req := `{"function":"sleep","args":{"seconds":"1"}}`
		id := s.api.submit(ctx, req)
		if j := s.api.waitFinished(ctx, id); j.Status != job.Succeeded {
			t.Fatalf("job %s = %s, want succeeded", id, j.Status)
		}
		e := requestedEvent(id, req)
		e.extensions = map[string]string{
			"knativeerrorcode": "500",
			"knativeerrordest": s.dispatcherURL + "/",
			"knativeerrordata": base64.StdEncoding.EncodeToString([]byte("attempt 1 failed: boom")),
		}
		if status, body := e.post(t, ctx, s.dispatcherURL+dispatch.DeadLetterPath); status != http.StatusOK {
			t.Errorf("the dead letter was answered %d, want 200: %s", status, body)
		}
		checkOneSuccess(t, s, id, s.api.get(ctx, id))
	})
}

// TestDeletedJobNumbersOn: a failing job's Job deleted before the
// Broker's retry never restarts the numbering: the retry starts the next
// attempt, never attempt 1 again, and the job fails after attempt 3 as the
// delivery spec says.
func TestDeletedJobNumbersOn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// byHand deletes Job 1 once its failure is recorded; otherwise the
		// TTL controller deletes every Job a second after it is recorded
		// (KJOBS_JOB_GRACE 1s), racing the Broker's retries.
		byHand bool
		grace  time.Duration
	}{
		{name: "by hand", byHand: true},
		{name: "by its TTL after the grace", grace: time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, options{
				functions: map[string]string{"fail": testenv.Chaos(1, "Error", "boom", 100*time.Millisecond)},
				jobGrace:  tc.grace,
			})
			ctx := timeout(t, 3*time.Minute)
			created := s.watchCreated(ctx)
			id := s.api.submit(ctx, `{"function":"fail"}`)
			if tc.byHand {
				s.api.waitFor(ctx, id, "to have attempt 1 recorded failed", func(j job.Job) bool {
					return j.Status == job.Retrying
				})
				// The Broker retries 2 s after the dispatcher's 500.
				if err := s.kube.BatchV1().Jobs(s.ns).Delete(ctx, runner.Name(id, 1), metav1.DeleteOptions{
					PropagationPolicy: new(metav1.DeletePropagationBackground),
				}); err != nil {
					t.Fatal(err)
				}
				if j := s.api.get(ctx, id); len(j.Attempts) != 1 {
					t.Fatalf("job %s had %d attempts when Job %s was deleted, want 1: the test was too slow", id, len(j.Attempts), runner.Name(id, 1))
				}
			}

			j := s.api.waitFinished(ctx, id)
			want := []attemptSummary{failed(id, 1, "boom"), failed(id, 2, "boom"), failed(id, 3, "boom")}
			if diff := cmp.Diff(want, summarize(j.Attempts)); diff != "" {
				t.Errorf("job %s attempts (-want +got):\n%s", id, diff)
			}
			if want := "dead-lettered after HTTP 500: attempt 3 failed: boom"; j.Status != job.Failed || j.Error != want {
				t.Errorf("job %s = %s with error %q, want failed with %q", id, j.Status, j.Error, want)
			}
			if diff := cmp.Diff(attemptNames(id, 1, 3), created()); diff != "" {
				t.Errorf("Jobs created for job %s, in order (-want +got):\n%s", id, diff)
			}
			left := testenv.JobNames(s.jobs(ctx, id))
			t.Logf("Jobs of job %s left at its end: %v", id, left)
			if tc.byHand {
				if diff := cmp.Diff(attemptNames(id, 2, 3), left); diff != "" {
					t.Errorf("Jobs of job %s (-want +got):\n%s", id, diff)
				}
			}
			if diff := cmp.Diff(job.Stats{Failed: 1, Retries: 2}, s.api.stats(ctx)); diff != "" {
				t.Errorf("GET /jobs/stats (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDeadLetterWithoutExtensions: a dead letter without knativeerror*
// extensions, as the MT Broker sends after a timeout or a filter's 500
// with no body, still fails a job that has no attempt left to wait for.
func TestDeadLetterWithoutExtensions(t *testing.T) {
	t.Parallel()

	// Posted by hand: to a job whose attempt failed (delivered straight
	// to the dispatcher, which answered 500) and to a job the dispatcher
	// never saw.
	t.Run("by hand", func(t *testing.T) {
		t.Parallel()
		s := newStack(t, options{functions: map[string]string{"fail": testenv.Chaos(1, "Error", "boom", 100*time.Millisecond)}})
		ctx := timeout(t, 2*time.Minute)
		retrying := requestedEvent(uuid.NewString(), `{"function":"fail"}`)
		if status, body := retrying.post(t, ctx, s.dispatcherURL+"/"); status != http.StatusInternalServerError {
			t.Fatalf("the delivery was answered %d, want 500: %s", status, body)
		}
		if j := s.api.get(ctx, retrying.id); j.Status != job.Retrying {
			t.Fatalf("job %s = %s, want retrying", retrying.id, j.Status)
		}
		unknown := requestedEvent(uuid.NewString(), `{"function":"sleep","args":{"seconds":"1"}}`)
		for _, e := range []event{retrying, unknown} {
			if status, body := e.post(t, ctx, s.dispatcherURL+dispatch.DeadLetterPath); status != http.StatusOK {
				t.Errorf("the dead letter of job %s was answered %d, want 200: %s", e.id, status, body)
			}
			if j := s.api.get(ctx, e.id); j.Status != job.Failed || j.Error != "dead-lettered" {
				t.Errorf("job %s after a dead letter without extensions = %s with error %q, want failed with %q", e.id, j.Status, j.Error, "dead-lettered")
			}
		}
		if diff := cmp.Diff(job.Stats{Failed: 2}, s.api.stats(ctx)); diff != "" {
			t.Errorf("GET /jobs/stats (-want +got):\n%s", diff)
		}
	})

	// The real Broker's: the channel's delivery to the filter times out
	// (timeout PT3S, retry 0 here) while the attempt is held, and the
	// channel dead-letters the event with no extensions (Knative adds
	// them only from the filter's error body, and a timeout has none).
	// The job keeps running; its attempt's failure then fails it with the
	// dead letter's reason.
	t.Run("broker timeout", func(t *testing.T) {
		t.Parallel()
		pool := testenv.NewPool()
		s := newStack(t, options{
			functions: map[string]string{"fail": testenv.Chaos(1, "Error", "boom", 100*time.Millisecond) + testenv.OnPool(pool)},
			delivery: func(d *eventingduckv1.DeliverySpec) {
				noRetry(d)
				d.Timeout = ptr.String("PT3S")
			},
		})
		ctx := timeout(t, 3*time.Minute)
		id := s.api.submit(ctx, `{"function":"fail"}`)
		s.waitDeliveries(ctx, "dead-letter", http.StatusOK, 1)
		if j := s.api.get(ctx, id); j.Status != job.Running {
			t.Errorf("job %s after the dead letter, its attempt running = %s, want running", id, j.Status)
		}
		s.addNode(ctx, pool)
		j := s.api.waitFinished(ctx, id)
		if j.Status != job.Failed || j.Error != "dead-lettered" {
			t.Errorf("job %s = %s with error %q, want failed with %q", id, j.Status, j.Error, "dead-lettered")
		}
		if diff := cmp.Diff([]attemptSummary{failed(id, 1, "boom")}, summarize(j.Attempts)); diff != "" {
			t.Errorf("job %s attempts (-want +got):\n%s", id, diff)
		}
		if diff := cmp.Diff(job.Stats{Failed: 1}, s.api.stats(ctx)); diff != "" {
			t.Errorf("GET /jobs/stats (-want +got):\n%s", diff)
		}
	})
}

// TestDispatcherRefuses: both of the dispatcher's routes answer 4xx, which
// the Broker neither retries nor dead-letters again, to an event type that
// is not kjobs' own and to a body over dispatch.MaxEventSize, and create
// no job for either.
func TestDispatcherRefuses(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	ctx := timeout(t, 2*time.Minute)
	foreign := requestedEvent(uuid.NewString(), `{"function":"sleep","args":{"seconds":"1"}}`)
	foreign.typ = "com.example.order.created"
	pad := strings.Repeat("x", dispatch.MaxEventSize)
	huge := requestedEvent(uuid.NewString(), fmt.Sprintf(`{"function":"echo","args":{"message":%q}}`, pad))
	for _, path := range []string{"/", dispatch.DeadLetterPath} {
		for _, tc := range []struct {
			name string
			e    event
			want int
		}{
			{"foreign type", foreign, http.StatusBadRequest},
			{"over the cap", huge, http.StatusRequestEntityTooLarge},
		} {
			status, body := tc.e.post(t, ctx, s.dispatcherURL+path)
			if status != tc.want {
				t.Errorf("POST %s, %s: %d %q, want %d", path, tc.name, status, body, tc.want)
			}
			if code, raw, err := s.api.try(ctx, http.MethodGet, "/jobs/"+tc.e.id, ""); err != nil || code != http.StatusNotFound {
				t.Errorf("GET /jobs/%s after POST %s, %s = %d %v, want 404: no job\n%s", tc.e.id, path, tc.name, code, err, raw)
			}
		}
	}
	if diff := cmp.Diff(job.Stats{}, s.api.stats(ctx)); diff != "" {
		t.Errorf("GET /jobs/stats (-want +got):\n%s", diff)
	}
}
