package local_test

import (
	"context"
	"fmt"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/kjobs/kjobs/internal/binding"
	"github.com/kjobs/kjobs/internal/binding/local"
)

// Match picks the bindings whose filters select an event, as the Broker's
// filter would pick their Triggers.
func ExampleStore_Match() {
	ctx := context.Background()
	s := local.New()
	for _, body := range []string{
		`{"name":"created","filter":{"type":"com.amazonaws.s3.object-created"},"function":"echo"}`,
		`{"name":"pngs","filters":[{"suffix":{"subject":".png"}}],"function":"echo"}`,
	} {
		b, err := binding.Decode([]byte(body))
		if err != nil {
			panic(err)
		}
		if _, err := s.Create(ctx, b); err != nil {
			panic(err)
		}
		defer s.Delete(ctx, b.Name)
	}

	e := cloudevents.NewEvent()
	e.SetID("3f1c/2026-12-01T10:00:00Z#17")
	e.SetSource("arn:aws:s3:::photos")
	e.SetType("com.amazonaws.s3.object-removed")
	e.SetSubject("cat.png")
	for _, b := range s.Match(e) {
		fmt.Println(b.Name, "runs", b.Function)
	}
	// Output:
	// pngs runs echo
}
