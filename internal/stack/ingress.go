package stack

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/kjobs/kjobs/internal/binding"
	localbinding "github.com/kjobs/kjobs/internal/binding/local"
	"github.com/kjobs/kjobs/internal/delivery"
	"github.com/kjobs/kjobs/internal/dispatch"
	"github.com/kjobs/kjobs/internal/event"
)

// ingress is the in-process Broker's address for events from anywhere, on
// KJOBS_BROKER_PORT: it takes a CloudEvent in binary or structured mode as
// a Broker's ingress does, answers 202 once the event is queued, and hands
// it to every Trigger that would select it: kjobs' own types to the
// dispatcher's route, any event to each binding whose filter matches it.
// An event nothing selects is taken and dropped, as a Broker drops it.
type ingress struct {
	broker     *delivery.Local
	bindings   *localbinding.Store
	dispatcher *url.URL
	log        *slog.Logger
}

func (in *ingress) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "send a CloudEvent with POST", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, dispatch.MaxEventSize)
	e, err := cehttp.NewEventFromHTTPRequest(r)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		http.Error(w, fmt.Sprintf("event larger than %d bytes", dispatch.MaxEventSize), http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		http.Error(w, "not a CloudEvent: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := e.Validate(); err != nil {
		http.Error(w, "not a valid CloudEvent: "+err.Error(), http.StatusBadRequest)
		return
	}
	if event.Known(e.Type()) {
		err = in.broker.Send(r.Context(), *e)
	}
	matched := in.bindings.Match(*e)
	for _, b := range matched {
		if err != nil {
			break
		}
		err = in.broker.SendTo(r.Context(), *e,
			in.dispatcher.JoinPath(binding.SubscriberPath(b.Name)),
			in.dispatcher.JoinPath(binding.DeadLetterPath(b.Name)))
	}
	if err != nil {
		// Only a full queue fails a send: the client may try again.
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	in.log.Debug("event accepted", "id", e.ID(), "type", e.Type(), "source", e.Source(), "bindings", len(matched))
	w.WriteHeader(http.StatusAccepted)
}
