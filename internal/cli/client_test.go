package cli

import (
	"testing"

	"github.com/kjobs/kjobs/internal/problem"
)

func TestAPIErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  apiError
		want string
	}{
		{"detail", apiError{status: 400, p: problem.New(problem.UnknownFunction, `function "resize" does not exist`)},
			`unknown-function: function "resize" does not exist`},
		{"title when there is no detail", apiError{status: 404, p: problem.New(problem.NotFound, "")}, "not-found: Not found"},
		{"each fault of several", apiError{status: 400, p: problem.Details{Type: problem.InvalidArgs.Type(), Detail: "args/seconds: minimum: got -1, want 0",
			Errors: []problem.Error{{Detail: "minimum: got -1, want 0", Pointer: "#/args/seconds"}, {Detail: "additional properties 'x' not allowed", Pointer: "#/args"}}}},
			"invalid-args: args/seconds: minimum: got -1, want 0\n  /args/seconds: minimum: got -1, want 0\n  /args: additional properties 'x' not allowed"},
		{"not a problem document", apiError{status: 502, body: "<html>bad gateway</html>"}, "HTTP 502 Bad Gateway: <html>bad gateway</html>"},
		{"no body", apiError{status: 503}, "HTTP 503 Service Unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}
