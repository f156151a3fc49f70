package kube_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/runner"
	"github.com/kjobs/kjobs/internal/runner/kube"
)

func ExampleConfig_WithDefaults() {
	cfg := kube.Config{Namespace: "kjobs", Image: "registry.example/kjobs/processor@sha256:0123"}.WithDefaults()
	fmt.Println(cfg.ServiceAccount, cfg.Deadline, cfg.TTL, cfg.Grace, cfg.FunctionsConfigMap)
	// Output: kjobs-job 10m0s 24h0m0s 10m0s kjobs-functions
}

// printer records attempts by printing them; the dispatcher's store is the
// real Recorder.
type printer struct{}

func (printer) Record(_ context.Context, jobID string, a job.Attempt) error {
	fmt.Println(jobID, a.Attempt, a.Outcome)
	return nil
}

// The dispatcher builds one runner for its lifetime, in its own namespace,
// and runs every attempt through it.
func ExampleNew() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	restCfg, err := rest.InClusterConfig()
	if err != nil {
		log.Fatal(err)
	}
	// Many deliveries start Jobs at once; client-go's default of 5
	// requests per second would queue them in the client.
	restCfg.QPS, restCfg.Burst = 50, 100
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		log.Fatal(err)
	}
	r, err := kube.New(ctx, client, kube.Config{
		Namespace: os.Getenv("KJOBS_NAMESPACE"),
		Image:     os.Getenv("KJOBS_PROCESSOR_IMAGE"),
	})
	if err != nil {
		log.Fatal(err)
	}

	// The reconciler records every attempt from the cluster, whether or
	// not a delivery waits for it, until ctx ends.
	go func() {
		if err := r.Reconcile(ctx, printer{}); err != nil {
			log.Print(err)
		}
	}()

	spec := runner.Spec{JobID: "0199a3c2-7d7e-7b4e-9f2a-6f1c2d3e4f50", Attempt: 1, Function: "sample"}
	if _, err := r.Start(ctx, spec); err != nil {
		log.Fatal(err)
	}
	attempt, err := r.Wait(ctx, spec.JobID, spec.Attempt)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(attempt.Job, attempt.Outcome, attempt.Message)
}
