package local_test

import (
	"context"
	"fmt"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/schedule"
	"github.com/kjobs/kjobs/internal/schedule/local"
)

// printer is a Sender that prints the first tick and ends the example.
type printer struct{ stop context.CancelFunc }

func (p printer) Send(_ context.Context, e cloudevents.Event) error {
	fmt.Println(e.Type())
	fmt.Println(e.Source())
	fmt.Println(e.Extensions()["kjobsorigin"])
	fmt.Println(string(e.Data()))
	p.stop()
	return nil
}

// A local Store sends what the schedule's PingSource would send in a
// cluster.
func ExampleStore() {
	ctx, stop := context.WithCancel(context.Background())
	s := local.New(printer{stop: stop})
	id := "0198c2f0-7c1e-7000-8000-000000000001"
	if _, err := s.Create(ctx, schedule.Schedule{
		ID: id, Name: "every second", Cron: "* * * * * *", Function: "sample", Args: job.Args{"greeting": "hello"},
	}); err != nil {
		fmt.Println(err)
		return
	}
	if err := s.Run(ctx); err != nil {
		fmt.Println(err)
	}
	// Output:
	// dev.knative.sources.ping
	// /apis/v1/namespaces/local/pingsources/kjobs-schedule-0198c2f0-7c1e-7000-8000-000000000001
	// schedule
	// {"function":"sample","args":{"greeting":"hello"},"schedule":"0198c2f0-7c1e-7000-8000-000000000001"}
}

// pausedPrinter is a Sender that prints whether the first tick says its
// schedule is paused, and ends the example.
type pausedPrinter struct{ stop context.CancelFunc }

func (p pausedPrinter) Send(_ context.Context, e cloudevents.Event) error {
	fmt.Println(e.Extensions()["kjobspaused"])
	p.stop()
	return nil
}

// A paused schedule goes on ticking; its ticks say that it is paused, and
// the dispatcher drops them.
func ExampleStore_SetPaused() {
	ctx, stop := context.WithCancel(context.Background())
	s := local.New(pausedPrinter{stop: stop})
	id := "0198c2f0-7c1e-7000-8000-000000000002"
	if _, err := s.Create(ctx, schedule.Schedule{ID: id, Cron: "* * * * * *", Function: "sample"}); err != nil {
		fmt.Println(err)
		return
	}
	sc, err := s.SetPaused(ctx, id, true)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("paused:", sc.Paused)
	if err := s.Run(ctx); err != nil {
		fmt.Println(err)
	}
	// Output:
	// paused: true
	// true
}
