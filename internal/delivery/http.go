package delivery

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/kjobs/kjobs/internal/event"
)

// HTTPSender sends events to a Broker's address, such as the K_SINK a
// SinkBinding injects. Send returns once the Broker accepted the event.
type HTTPSender struct {
	client cloudevents.Client
}

// maxIdlePerHost keeps enough connections to the Broker's ingress open for
// the API's concurrent sends, so that a burst of POST /jobs reuses them
// instead of dialling one per event.
const maxIdlePerHost = 256

// NewHTTPSender returns a sender to target, over a transport of its own
// that keeps connections to the Broker alive.
func NewHTTPSender(target string) (*HTTPSender, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns = maxIdlePerHost
	transport.MaxIdleConnsPerHost = maxIdlePerHost
	transport.IdleConnTimeout = 90 * time.Second
	c, err := cloudevents.NewClientHTTP(cloudevents.WithTarget(target), cehttp.WithRoundTripper(transport))
	if err != nil {
		return nil, fmt.Errorf("delivery.NewHTTPSender: %w", err)
	}
	return &HTTPSender{client: c}, nil
}

// Send hands e to the Broker. Its error wraps event.ErrNotSent when the
// Broker certainly did not take the event: the request was never written
// (no connection, say), or the Broker answered it with an error status.
// Any other error, such as a timeout after the request was written, leaves
// it unknown whether the Broker has the event.
func (s *HTTPSender) Send(ctx context.Context, e cloudevents.Event) error {
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				wrote.Store(true)
			}
		},
	})
	res := s.client.Send(ctx, e)
	if cloudevents.IsACK(res) {
		return nil
	}
	var answered *cehttp.Result
	if !wrote.Load() || (cloudevents.ResultAs(res, &answered) && answered.StatusCode >= 300) {
		return fmt.Errorf("delivery.Send %s: %w: %w", e.ID(), event.ErrNotSent, res)
	}
	return fmt.Errorf("delivery.Send %s: %w", e.ID(), res)
}
