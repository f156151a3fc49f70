package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kjobs/kjobs/internal/dispatch"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/store"
	"github.com/kjobs/kjobs/internal/testenv"
)

// TestConcurrentDeliveriesStayApart sends the dispatcher many different
// events at once, as a Broker does: each must be handled by its own route,
// within its own request, and answered.
//
// cloudevents' NewHTTPReceiveHandler hands each request's event to
// whichever of its goroutines takes it from the Protocol's one channel
// (cloudevents/sdk-go#1224): two handlers sharing one Protocol mix up
// their routes, and a goroutine whose own request was served by another
// may leave, stranding a request until the next one arrives.
func TestConcurrentDeliveriesStayApart(t *testing.T) {
	t.Parallel()
	const n = 10

	// Deliveries on / and dead letters on /dead-letter, all at once, as
	// the Broker sends them: each must be handled by its own route. The
	// deliveries ask for a function the processor does not have, which the
	// dispatcher refuses with 400 without recording anything (the Broker
	// then dead-letters them at once); the dead letters must be
	// acknowledged and their jobs recorded as failed. A delivery handled as
	// a dead letter would answer 200 and record a failed job that never
	// ran; a dead letter handled as a delivery would answer 400, or run the
	// job again.
	t.Run("deliveries and dead letters", func(t *testing.T) {
		t.Parallel()
		d := startInProcess(t, nil)
		const rounds, each = 40, 25
		for round := range rounds {
			// Every answer is immediate; a request still unanswered after
			// this long was lost by the handler.
			ctx := timeout(t, 30*time.Second)
			delivered, deadLettered := make([]string, each), make([]string, each)
			answers := make([]answer, 2*each)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range each {
				delivered[i], deadLettered[i] = uuid.NewString(), uuid.NewString()
				wg.Go(func() {
					<-start
					answers[2*i] = requested(delivered[i], `{"function":"nope"}`).post(ctx, d.url+"/", nil)
				})
				wg.Go(func() {
					<-start
					dead := requested(deadLettered[i], `{"function":"nope"}`)
					dead.extensions = map[string]string{"knativeerrorcode": "400"}
					answers[2*i+1] = dead.post(ctx, d.url+dispatch.DeadLetterPath, nil)
				})
			}
			close(start)
			wg.Wait()

			crossed := 0
			for i := range each {
				if a := answers[2*i]; a.err != nil || a.status != http.StatusBadRequest || !strings.Contains(a.body, `unknown function "nope"`) {
					crossed++
					t.Errorf("round %d: delivery of job %s answered %v, want 400 unknown function", round, delivered[i], a)
				}
				if _, err := d.store.Get(ctx, delivered[i]); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("round %d: delivery of job %s was recorded (%v); a refused delivery records nothing", round, delivered[i], err)
				}
				if a := answers[2*i+1]; a.err != nil || a.status != http.StatusOK {
					crossed++
					t.Errorf("round %d: dead letter of job %s answered %v, want 200", round, deadLettered[i], a)
				}
				if j, err := d.store.Get(ctx, deadLettered[i]); err != nil || j.Status != job.Failed || j.Error != "dead-lettered after HTTP 400" {
					t.Errorf("round %d: dead-lettered job %s is %q (error %q, %v), want failed, dead-lettered after HTTP 400", round, deadLettered[i], j.Status, j.Error, err)
				}
			}
			if crossed > 0 {
				t.Fatalf("round %d: %d of %d requests answered as if sent to the other route", round, crossed, 2*each)
			}
		}
		if want := (job.Stats{Failed: rounds * each}); d.stats(t, t.Context()) != want {
			t.Errorf("stats = %+v, want %+v", d.stats(t, t.Context()), want)
		}
	})

	// Short and long attempts at once: a long attempt's delivery must keep
	// waiting for its own attempt after the short ones have been answered.
	t.Run("short and long attempts", func(t *testing.T) {
		t.Parallel()
		// The long attempts' pods wait for a node that does not exist yet.
		pool := testenv.NewPool()
		d := startInProcess(t, map[string]string{"sleep": testenv.OnPool(pool)})
		ctx := timeout(t, 3*time.Minute)

		short, long := make([]string, n), make([]string, n)
		shortAnswers := make([]answer, n)
		longAnswers := make(chan answer, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			short[i], long[i] = uuid.NewString(), uuid.NewString()
			wg.Go(func() {
				<-start
				shortAnswers[i] = requested(short[i], `{"function":"echo"}`).post(ctx, d.url+"/", nil)
			})
			go func() {
				<-start
				longAnswers <- requested(long[i], fmt.Sprintf(`{"function":"sleep","args":{"seconds":"%d"}}`, i+1)).post(ctx, d.url+"/", nil)
			}()
		}
		close(start)
		wg.Wait()
		checkAnswers(t, "short attempts", shortAnswers, http.StatusOK, "")

		// Every long delivery is still waiting: none may have answered.
		var got []answer
		select {
		case a := <-longAnswers:
			t.Errorf("a long attempt's delivery answered %v while its pod was still Pending", a)
			got = append(got, a)
		case <-time.After(time.Second):
		}
		testenv.AddNode(t, ctx, d.client, pool)
		for len(got) < n {
			select {
			case a := <-longAnswers:
				got = append(got, a)
			case <-ctx.Done():
				t.Fatalf("long deliveries did not answer: %v", ctx.Err())
			}
		}
		checkAnswers(t, "long attempts", got, http.StatusOK, "")
		for _, id := range long {
			if j := d.job(t, ctx, id); j.Status != job.Succeeded || len(j.Attempts) != 1 {
				t.Errorf("long job %s is %s with %d attempts, want succeeded with 1", id, j.Status, len(j.Attempts))
			}
		}
	})
}
