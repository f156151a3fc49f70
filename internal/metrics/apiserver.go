package metrics

import (
	"net/http"
	"strings"
)

// APIServer wraps a Kubernetes client's transport (rest.Config.Wrap) to
// count the requests that failed. The verb and resource are read from the
// request, as the API server's own audit does, so that neither an object's
// name nor its namespace becomes a label value. A request that its caller
// gave up on, such as a watch stopped at shutdown, is not a failure.
func (c *Clients) APIServer(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(r)
		if (err != nil && r.Context().Err() == nil) || (err == nil && failedStatus(resp.StatusCode)) {
			verb, resource := request(r)
			c.apiserver.WithLabelValues(verb, resource).Inc()
		}
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// failedStatus reports whether an answer is an error of the API server or
// of kjobs' use of it. 404 and 409 are answers kjobs acts on: an attempt's
// Job that does not exist yet, or one that another delivery created.
func failedStatus(code int) bool {
	return code >= 400 && code != http.StatusNotFound && code != http.StatusConflict
}

// request returns the Kubernetes verb and resource (with its subresource,
// as "pods/log") of a request to the API server's REST paths:
// /api/v1[/namespaces/<ns>]/<resource>[/<name>[/<subresource>]] and
// /apis/<group>/<version>/... Any other path, such as /version or a
// discovery path, is the resource "nonresource", so that the labels stay
// few whatever the path.
func request(r *http.Request) (verb, resource string) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		parts = nil
	}
	// A namespace's own path is namespaces/<ns>, the resources in it
	// namespaces/<ns>/<resource>/...
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	if len(parts) == 0 {
		return strings.ToLower(r.Method), "nonresource"
	}
	resource = parts[0]
	if len(parts) >= 3 {
		resource += "/" + parts[2]
	}
	named := len(parts) >= 2
	switch r.Method {
	case http.MethodGet:
		switch {
		case r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1":
			verb = "watch"
		case named:
			verb = "get"
		default:
			verb = "list"
		}
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		verb = "delete"
		if !named {
			verb = "deletecollection"
		}
	default:
		verb = strings.ToLower(r.Method)
	}
	return verb, resource
}
