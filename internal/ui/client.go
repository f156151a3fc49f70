package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/kjobs/kjobs/internal/problem"
)

// apiError is an answer of the API other than a success.
type apiError struct {
	Status int
	// Detail is the problem's detail, or its title when it has none.
	Detail string
}

func (e *apiError) Error() string { return fmt.Sprintf("the API answered %d: %s", e.Status, e.Detail) }

// call serves method target to the API in process, as the user whose token
// is given, and returns the body of a 2xx answer, or an *apiError.
func (s *Server) call(ctx context.Context, token, method, target string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return nil, fmt.Errorf("ui: %s %s: %w", method, target, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	s.cfg.API.ServeHTTP(rec, req)
	body := rec.Body.Bytes()
	if rec.Code >= 200 && rec.Code < 300 {
		return body, nil
	}
	var p problem.Details
	if err := json.Unmarshal(body, &p); err != nil || (p.Detail == "" && p.Title == "") {
		return nil, &apiError{Status: rec.Code, Detail: http.StatusText(rec.Code)}
	}
	if p.Detail == "" {
		p.Detail = p.Title
	}
	return nil, &apiError{Status: rec.Code, Detail: p.Detail}
}

// get calls GET target and decodes its JSON answer into out.
func (s *Server) get(ctx context.Context, token, target string, out any) error {
	body, err := s.call(ctx, token, http.MethodGet, target)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("ui: decoding GET %s: %w", target, err)
	}
	return nil
}
