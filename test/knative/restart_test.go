package knative

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	batchv1 "k8s.io/api/batch/v1"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/store"
	"github.com/kjobs/kjobs/internal/testenv"
)

// brokerGivesUp outlasts the Broker's deliveries to a dispatcher that is
// down: the channel's first try and two retries (2 s and 4 s later, each
// refused at once), then the dead letter, also tried three times.
const brokerGivesUp = 20 * time.Second

// TestDispatcherKilledMidAttempt SIGKILLs the dispatcher while a delivery
// waits for its attempt, lets the attempt's Job end while no dispatcher
// runs and the Broker's retries and dead letter are refused, and starts the
// dispatcher again once the Broker has given up.
func TestDispatcherKilledMidAttempt(t *testing.T) {
	t.Parallel()
	// The reconciler records the attempt that failed while the dispatcher
	// was down as soon as it starts: the job is retrying, and nothing
	// would deliver its event again. The sweep re-sends it, and the
	// Broker delivers it with the Triggers' whole delivery spec: attempts
	// 2 and 3, then a third delivery, which would start attempt 4. The
	// dispatcher starts none past KJOBS_MAX_ATTEMPTS (3): it fails the job
	// with attempt 3's message, as many attempts as a job whose deliveries
	// all reach a dispatcher gets.
	t.Run("attempt fails", func(t *testing.T) {
		t.Parallel()
		pool := testenv.NewPool()
		s := newStack(t, options{
			functions:  map[string]string{"fail": testenv.Chaos(1, "Error", "boom", 100*time.Millisecond) + testenv.OnPool(pool)},
			sweepAfter: 5 * time.Second,
		})
		ctx := timeout(t, 4*time.Minute)
		id := s.api.submit(ctx, `{"function":"fail"}`)
		s.waitJob(ctx, runner.Name(id, 1), "to be created", exists)
		s.api.waitFor(ctx, id, "to run", func(j job.Job) bool { return j.Status == job.Running })

		s.dispatcher.Kill()
		killed := time.Now()
		s.addNode(ctx, pool)
		s.waitJob(ctx, runner.Name(id, 1), "to fail", failedJob)
		time.Sleep(time.Until(killed.Add(brokerGivesUp)))
		if j := s.api.get(ctx, id); j.Status != job.Running {
			t.Errorf("job %s while no dispatcher ran = %s, want running (nothing recorded the attempt)", id, j.Status)
		}
		s.startDispatcher(ctx)
		restarted := time.Now()
		s.api.waitFor(ctx, id, "to have attempt 1 recorded", func(j job.Job) bool {
			return len(j.Attempts) > 0 && j.Attempts[0].Outcome == job.OutcomeFailed
		})
		t.Logf("the restarted dispatcher recorded attempt 1 after %s", time.Since(restarted).Round(time.Millisecond))

		j := s.api.waitFinished(ctx, id)
		t.Logf("job %s ended %s %s after the kill, %s after the restart", id, j.Status,
			time.Since(killed).Round(time.Second), time.Since(restarted).Round(time.Second))
		want := []attemptSummary{failed(id, 1, "boom"), failed(id, 2, "boom"), failed(id, 3, "boom")}
		if diff := cmp.Diff(want, summarize(j.Attempts)); diff != "" {
			t.Errorf("job %s attempts (-want +got):\n%s", id, diff)
		}
		if want := "attempt 3 of 3 failed: boom"; j.Status != job.Failed || j.Error != want {
			t.Errorf("job %s = %s with error %q, want failed with %q", id, j.Status, j.Error, want)
		}
		if diff := cmp.Diff(attemptNames(id, 1, 3), testenv.JobNames(s.jobs(ctx, id))); diff != "" {
			t.Errorf("Jobs of job %s (-want +got):\n%s", id, diff)
		}
		if diff := cmp.Diff(job.Stats{Failed: 1, Retries: 2}, s.api.stats(ctx)); diff != "" {
			t.Errorf("GET /jobs/stats (-want +got):\n%s", diff)
		}
	})

	// The attempt succeeds while the dispatcher is down: the restarted
	// dispatcher's reconciler records it, and nothing is sent again.
	t.Run("attempt succeeds", func(t *testing.T) {
		t.Parallel()
		pool := testenv.NewPool()
		s := newStack(t, options{
			functions:  map[string]string{"sleep": testenv.OnPool(pool)},
			sweepAfter: 5 * time.Second,
		})
		ctx := timeout(t, 3*time.Minute)
		id := s.api.submit(ctx, sleep20)
		s.api.waitFor(ctx, id, "to run", func(j job.Job) bool { return j.Status == job.Running })
		s.dispatcher.Kill()
		killed := time.Now()
		s.addNode(ctx, pool)
		s.waitJob(ctx, runner.Name(id, 1), "to complete", func(j *batchv1.Job) bool { return testenv.JobOutcome(j) == batchv1.JobComplete })
		time.Sleep(time.Until(killed.Add(brokerGivesUp)))
		s.startDispatcher(ctx)
		restarted := time.Now()
		j := s.api.waitFinished(ctx, id)
		t.Logf("job %s ended %s %s after the kill, %s after the restart", id, j.Status,
			time.Since(killed).Round(time.Second), time.Since(restarted).Round(time.Millisecond))
		if diff := cmp.Diff([]attemptSummary{succeeded(id, 1)}, summarize(j.Attempts)); diff != "" || j.Status != job.Succeeded {
			t.Errorf("job %s = %s, attempts (-want +got):\n%s", id, j.Status, diff)
		}
		if diff := cmp.Diff(job.Stats{Succeeded: 1}, s.api.stats(ctx)); diff != "" {
			t.Errorf("GET /jobs/stats (-want +got):\n%s", diff)
		}
	})
}

// TestBrokerFilterRestartMidAttempt kills the Broker's filter while it
// holds a delivery to the dispatcher, and starts it again at once. The
// channel's delivery to the filter was cut, so the channel retries it with
// the Trigger's delivery spec (the MT Broker gives the Trigger's
// Subscription that spec); the redelivery adopts the attempt's Job, which
// still runs, and the job succeeds with one attempt and no retry counted.
// (Had the filter stayed down past the channel's retries, the channel
// would have dead-lettered the event without knativeerror* extensions
// while the attempt ran, and the attempt's success would still decide.)
//
// Not parallel: the filter serves every test's Triggers.
func TestBrokerFilterRestartMidAttempt(t *testing.T) {
	pool := testenv.NewPool()
	s := newStack(t, options{functions: map[string]string{"sleep": testenv.OnPool(pool)}})
	ctx := timeout(t, 3*time.Minute)
	id := s.api.submit(ctx, sleep20)
	s.api.waitFor(ctx, id, "to run", func(j job.Job) bool { return j.Status == job.Running })

	killed := time.Now()
	s.eventing.Stop(t, testenv.BrokerFilter)
	s.eventing.Start(t, testenv.BrokerFilter)
	// Past the channel's retries, so that the redelivery has come.
	time.Sleep(8 * time.Second)
	s.addNode(ctx, pool)
	j := s.api.waitFinished(ctx, id)
	t.Logf("job %s ended %s %s after the kill; the dispatcher answered %d deliveries 200, %d 503 (the cut one), took %d dead letters",
		id, j.Status, time.Since(killed).Round(time.Second), s.deliveries(ctx, "receive", http.StatusOK),
		s.deliveries(ctx, "receive", http.StatusServiceUnavailable), s.deliveries(ctx, "dead-letter", http.StatusOK))
	checkOneSuccess(t, s, id, j)
}

// TestChannelDispatcherRestart kills the in-memory channel's dispatcher
// and starts it again. The events it holds are lost: it keeps nothing
// across a restart, and it has answered the ingress 202 already.
//
// Not parallel: the channel dispatcher serves every test's Brokers.
func TestChannelDispatcherRestart(t *testing.T) {
	// The event is in flight: the channel's delivery to the filter, and
	// the filter's to the dispatcher, are cut while the attempt runs.
	// Nothing redelivers it; the reconciler records the attempt's success
	// from the cluster, and the job ends succeeded with one attempt.
	t.Run("mid-attempt", func(t *testing.T) {
		pool := testenv.NewPool()
		s := newStack(t, options{functions: map[string]string{"sleep": testenv.OnPool(pool)}, sweepAfter: 5 * time.Second})
		ctx := timeout(t, 3*time.Minute)
		id := s.api.submit(ctx, sleep20)
		s.api.waitFor(ctx, id, "to run", func(j job.Job) bool { return j.Status == job.Running })
		killed := time.Now()
		s.eventing.Stop(t, testenv.ChannelDispatcher)
		s.eventing.Start(t, testenv.ChannelDispatcher)
		s.addNode(ctx, pool)
		j := s.api.waitFinished(ctx, id)
		t.Logf("job %s ended %s %s after the kill; the dispatcher answered %d deliveries 503 (the cut one), %d 200",
			id, j.Status, time.Since(killed).Round(time.Millisecond),
			s.deliveries(ctx, "receive", http.StatusServiceUnavailable), s.deliveries(ctx, "receive", http.StatusOK))
		checkOneSuccess(t, s, id, j)
	})

	// The event is lost before any delivery: the filter is down, so the
	// channel holds the event to retry it, and is killed meanwhile. The
	// job stays queued with no attempt until the sweep re-sends its event
	// (KJOBS_SWEEP_AFTER 5 s); then it runs and succeeds.
	t.Run("before delivery", func(t *testing.T) {
		s := newStack(t, options{sweepAfter: 5 * time.Second})
		ctx := timeout(t, 3*time.Minute)
		s.eventing.Stop(t, testenv.BrokerFilter)
		id := s.api.submit(ctx, `{"function":"sleep","args":{"seconds":"1"}}`)
		killed := time.Now()
		s.eventing.Stop(t, testenv.ChannelDispatcher)
		s.eventing.Start(t, testenv.ChannelDispatcher)
		s.eventing.Start(t, testenv.BrokerFilter)
		if j := s.api.get(ctx, id); j.Status != job.Queued || len(j.Attempts) != 0 {
			t.Errorf("job %s after its event was lost = %s with %d attempts, want queued with none", id, j.Status, len(j.Attempts))
		}
		j := s.api.waitFinished(ctx, id)
		t.Logf("job %s ended %s %s after its event was lost (created %s)", id, j.Status,
			time.Since(killed).Round(time.Millisecond), j.CreatedAt.Format(time.TimeOnly))
		if len(j.Attempts) == 1 {
			if wait := j.Attempts[0].StartedAt.Sub(j.CreatedAt); wait < 4*time.Second {
				t.Errorf("job %s's attempt started %s after it was created, before the sweep could re-send it", id, wait)
			}
		}
		checkOneSuccess(t, s, id, j)
	})
}

// TestRedisUnavailableMidAttempt pauses the test's redis-server for 10 s
// while an attempt runs and ends: the dispatcher retries its Redis steps
// inside the delivery (for up to 30 s) instead of answering 503, so the
// job succeeds with one attempt and no retry of the Broker's is used up.
func TestRedisUnavailableMidAttempt(t *testing.T) {
	t.Parallel()
	const outage = 10 * time.Second
	pool := testenv.NewPool()
	s := newStack(t, options{functions: map[string]string{"sleep": testenv.OnPool(pool)}})
	ctx := timeout(t, 3*time.Minute)
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
	t.Logf("the attempt's Job completed %s into the outage", time.Since(paused).Round(time.Millisecond))
	if time.Since(paused) > outage {
		t.Fatalf("the Job completed %s into the outage, after it: the test proves nothing", time.Since(paused))
	}
	time.Sleep(time.Until(paused.Add(outage)))
	s.redis.Resume(t)
	resumed = true
	j := s.api.waitFinished(ctx, id)
	t.Logf("job %s ended %s %s after Redis came back", id, j.Status, time.Since(paused.Add(outage)).Round(time.Millisecond))
	checkOneSuccess(t, s, id, j)
	if got := s.deliveries(ctx, "receive", http.StatusServiceUnavailable); got != 0 {
		t.Errorf("the dispatcher answered %d deliveries 503, want none: the outage used up a retry", got)
	}
	if got := s.deliveries(ctx, "receive", http.StatusOK); got != 1 {
		t.Errorf("the dispatcher answered %d deliveries 200, want 1", got)
	}
}

// checkOneSuccess checks that job id succeeded with one attempt, whose Job
// is the only one, and that the stats count it once.
func checkOneSuccess(t *testing.T, s *stack, id string, j job.Job) {
	t.Helper()
	ctx := timeout(t, time.Minute)
	if j.Status != job.Succeeded || j.Error != "" {
		t.Errorf("job %s = %s with error %q, want succeeded", id, j.Status, j.Error)
	}
	if diff := cmp.Diff([]attemptSummary{succeeded(id, 1)}, summarize(j.Attempts)); diff != "" {
		t.Errorf("job %s attempts (-want +got):\n%s", id, diff)
	}
	if diff := cmp.Diff(attemptNames(id, 1, 1), testenv.JobNames(s.jobs(ctx, id))); diff != "" {
		t.Errorf("Jobs of job %s (-want +got):\n%s", id, diff)
	}
	if diff := cmp.Diff(job.Stats{Succeeded: 1}, s.api.stats(ctx)); diff != "" {
		t.Errorf("GET /jobs/stats (-want +got):\n%s", diff)
	}
}

// TestDispatcherDownWhenJobRequested: the dispatcher is down when a job is
// requested, for longer than the Broker's retries and dead letter last.
// The job stays queued with no attempt; once the dispatcher is back, its
// sweep (KJOBS_SWEEP_AFTER 5 s) re-sends the event and the job runs.
func TestDispatcherDownWhenJobRequested(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{sweepAfter: 5 * time.Second})
	ctx := timeout(t, 3*time.Minute)
	s.dispatcher.Kill()
	killed := time.Now()
	id := s.api.submit(ctx, `{"function":"sleep","args":{"seconds":"1"}}`)
	time.Sleep(brokerGivesUp)
	if j := s.api.get(ctx, id); j.Status != job.Queued || len(j.Attempts) != 0 {
		t.Errorf("job %s while no dispatcher ran = %s with %d attempts, want queued with none", id, j.Status, len(j.Attempts))
	}
	s.startDispatcher(ctx)
	restarted := time.Now()
	j := s.api.waitFinished(ctx, id)
	t.Logf("job %s ended %s %s after the kill, %s after the restart", id, j.Status,
		time.Since(killed).Round(time.Second), time.Since(restarted).Round(time.Millisecond))
	checkOneSuccess(t, s, id, j)
}

// TestPostWhileBrokerDown: while the Broker's ingress, or the channel
// behind it, is down, POST /jobs cannot hand the event over and says so
// with 503, leaving no job behind; the client's retry with the same
// Idempotency-Key, once the Broker is back, creates the job, which runs.
//
// Not parallel: every test's events pass through these components.
func TestPostWhileBrokerDown(t *testing.T) {
	for _, component := range []string{testenv.BrokerIngress, testenv.ChannelDispatcher} {
		t.Run(component, func(t *testing.T) {
			s := newStack(t, options{})
			ctx := timeout(t, 2*time.Minute)
			const body = `{"function":"sleep","args":{"seconds":"1"}}`
			key := uuid.NewString()
			post := func() (int, string, job.Job) {
				t.Helper()
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.api.url+"/jobs", strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", key)
				resp, err := direct.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				raw, _ := io.ReadAll(resp.Body)
				var j job.Job
				if resp.StatusCode == http.StatusAccepted {
					_ = json.Unmarshal(raw, &j)
				}
				return resp.StatusCode, string(raw), j
			}

			s.eventing.Stop(t, component)
			status, raw, _ := post()
			t.Logf("POST /jobs with %s down: %d %s", component, status, raw)
			if status != http.StatusServiceUnavailable {
				t.Errorf("POST /jobs with %s down = %d, want 503\n%s", component, status, raw)
			}
			var page store.Page
			if status, raw := s.api.do(ctx, http.MethodGet, "/jobs", "", &page); status != http.StatusOK || len(page.Jobs) != 0 {
				t.Errorf("GET /jobs after the refused POST = %d with %d jobs, want none\n%s", status, len(page.Jobs), raw)
			}
			s.eventing.Start(t, component)
			started := time.Now()

			// The client retries with backoff, as a 503 asks. The channel
			// dispatcher listens before it has built its channels' handlers,
			// so the first retries may be refused again, as the first was.
			var j job.Job
			for tries := 1; ; tries++ {
				status, raw, j = post()
				if status == http.StatusAccepted {
					t.Logf("POST /jobs answered 202 %s after %s was started again, at try %d", time.Since(started).Round(time.Millisecond), component, tries)
					break
				}
				if status != http.StatusServiceUnavailable || ctx.Err() != nil {
					t.Fatalf("POST /jobs again with the same Idempotency-Key = %d, want 202 with a job, or 503\n%s", status, raw)
				}
				time.Sleep(200 * time.Millisecond)
			}
			checkOneSuccess(t, s, j.ID, s.api.waitFinished(ctx, j.ID))
		})
	}
}

// TestDispatcherTerminatedMidAttempt sends SIGTERM to the dispatcher, as a
// Knative revision rollout or scale-in does, while a delivery waits for an
// attempt that ends a moment later. The dispatcher says it finishes the
// requests in flight before it exits (internal/httpserver, up to 30 s):
// the held delivery should be answered once the attempt ends, and the
// dispatcher exit then, cleanly, well before that bound. Whatever it does,
// the job must end succeeded with one attempt once a dispatcher runs.
func TestDispatcherTerminatedMidAttempt(t *testing.T) {
	t.Parallel()
	pool := testenv.NewPool()
	s := newStack(t, options{functions: map[string]string{"sleep": testenv.OnPool(pool)}})
	ctx := timeout(t, 3*time.Minute)
	id := s.api.submit(ctx, sleep20)
	s.api.waitFor(ctx, id, "to run", func(j job.Job) bool { return j.Status == job.Running })

	old := s.dispatcher
	if err := old.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	terminated := time.Now()
	s.addNode(ctx, pool)
	s.waitJob(ctx, runner.Name(id, 1), "to complete", func(j *batchv1.Job) bool { return testenv.JobOutcome(j) == batchv1.JobComplete })
	completed := time.Since(terminated)
	select {
	case <-old.Done():
	case <-time.After(time.Minute):
		t.Fatal("the dispatcher did not exit a minute after SIGTERM")
	}
	exited := time.Since(terminated)
	t.Logf("after SIGTERM: the attempt's Job completed after %s, the dispatcher exited after %s (%v)",
		completed.Round(time.Millisecond), exited.Round(time.Millisecond), old.Err())
	if old.Err() != nil {
		t.Errorf("the dispatcher exited with %v after SIGTERM, want a clean exit", old.Err())
	}
	if exited > completed+10*time.Second {
		t.Errorf("the dispatcher exited %s after SIGTERM, %s after the attempt it held ended; want it to answer that delivery and exit", exited, exited-completed)
	}
	out := old.Log()
	if !strings.Contains(string(out), `"msg":"attempt succeeded","job":"`+id+`"`) {
		t.Errorf("the terminated dispatcher never answered the delivery it held for its attempt's success:\n%s", out)
	}

	s.startDispatcher(ctx)
	checkOneSuccess(t, s, id, s.api.waitFinished(ctx, id))
}
