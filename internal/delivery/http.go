package delivery

import (
	"context"
	"fmt"

	cloudevents "github.com/cloudevents/sdk-go/v2"
)

// HTTPSender sends events to a Broker's address, such as the K_SINK a
// SinkBinding injects. Send returns once the Broker accepted the event.
type HTTPSender struct {
	client cloudevents.Client
}

// NewHTTPSender returns a sender to target.
func NewHTTPSender(target string) (*HTTPSender, error) {
	c, err := cloudevents.NewClientHTTP(cloudevents.WithTarget(target))
	if err != nil {
		return nil, fmt.Errorf("delivery.NewHTTPSender: %w", err)
	}
	return &HTTPSender{client: c}, nil
}

// Send hands e to the Broker.
func (s *HTTPSender) Send(ctx context.Context, e cloudevents.Event) error {
	if res := s.client.Send(ctx, e); !cloudevents.IsACK(res) {
		return fmt.Errorf("delivery.Send %s: %w", e.ID(), res)
	}
	return nil
}
