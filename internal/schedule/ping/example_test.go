package ping_test

import (
	"context"
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/eventing/pkg/client/clientset/versioned/fake"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/schedule"
	"github.com/kjobs/kjobs/internal/schedule/ping"
)

// Create makes one PingSource per schedule; its spec is everything the
// ticks need.
func ExampleStore_Create() {
	client := fake.NewSimpleClientset()
	s := ping.New(client, ping.Config{Namespace: "kjobs", Broker: "kjobs"})
	ctx := context.Background()
	id := "0198c2f0-7c1e-7000-8000-000000000001"
	if _, err := s.Create(ctx, schedule.Schedule{
		ID: id, Name: "weekday report", Cron: "0 9 * * 1-5", Timezone: "Europe/Paris",
		Function: "report", Args: job.Args{"to": "ops"},
	}); err != nil {
		fmt.Println(err)
		return
	}
	ps, err := client.SourcesV1().PingSources("kjobs").Get(ctx, "kjobs-schedule-"+id, metav1.GetOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ps.Labels["kjobs.dev/schedule"])
	spec, _ := json.MarshalIndent(ps.Spec, "", "  ")
	fmt.Println(string(spec))
	// Output:
	// 0198c2f0-7c1e-7000-8000-000000000001
	// {
	//   "sink": {
	//     "ref": {
	//       "kind": "Broker",
	//       "namespace": "kjobs",
	//       "name": "kjobs",
	//       "apiVersion": "eventing.knative.dev/v1"
	//     }
	//   },
	//   "ceOverrides": {
	//     "extensions": {
	//       "kjobsorigin": "schedule"
	//     }
	//   },
	//   "schedule": "0 9 * * 1-5",
	//   "timezone": "Europe/Paris",
	//   "contentType": "application/json",
	//   "data": "{\"function\":\"report\",\"args\":{\"to\":\"ops\"},\"schedule\":\"0198c2f0-7c1e-7000-8000-000000000001\"}"
	// }
}
