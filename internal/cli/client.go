package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"github.com/kjobs/kjobs/internal/problem"
)

// client calls the kjobs API.
type client struct {
	base  string
	token string
	http  *http.Client
	// verbose, when not nil, gets a line per request: method, URL, status
	// and time taken, never a header.
	verbose io.Writer
}

// newClient returns the client of the API that g, the environment and the
// config file name.
func newClient(g globals, stderr io.Writer) (*client, error) {
	base, token, err := resolve(g, os.Getenv)
	if err != nil {
		return nil, err
	}
	c := &client{base: base, token: token, http: &http.Client{Transport: transport}}
	if g.verbose {
		c.verbose = stderr
	}
	return c, nil
}

// transport bounds connecting and waiting for an answer's headers, but not
// reading its body, which streams for as long as `logs -f` follows an
// attempt.
var transport = &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	TLSHandshakeTimeout:   10 * time.Second,
	ResponseHeaderTimeout: 30 * time.Second,
	MaxIdleConnsPerHost:   2,
}

// apiError is an answer of 4xx or 5xx, with its problem document when it
// has one.
type apiError struct {
	status int
	p      problem.Details
	// body is the start of an answer that is not a problem document.
	body string
}

func (e *apiError) Error() string {
	if e.p.Type == "" {
		msg := fmt.Sprintf("HTTP %d %s", e.status, http.StatusText(e.status))
		if e.body != "" {
			msg += ": " + e.body
		}
		return msg
	}
	slug := path.Base(e.p.Type)
	text := e.p.Detail
	if text == "" {
		text = e.p.Title
	}
	msg := slug + ": " + text
	// With several faults the detail names the first; the rest follow.
	if len(e.p.Errors) > 1 {
		for _, fe := range e.p.Errors {
			msg += "\n  " + strings.TrimPrefix(fe.Pointer, "#") + ": " + fe.Detail
		}
	}
	return msg
}

// do sends a request and returns the answer of a 2xx. Any other status is
// an *apiError (exit 1); a request that reached no API, exit 3.
func (c *client) do(ctx context.Context, method, p string, query url.Values, body any, header http.Header) (*http.Response, error) {
	u := c.base + p
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, usageError("%v", err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &exitError{code: ExitUnreachable, err: fmt.Errorf("the API at %s is unreachable (set --url, KJOBS_URL or url in the config file): %w", c.base, unwrapURLError(err))}
	}
	if c.verbose != nil {
		fmt.Fprintf(c.verbose, "%s %s: %s (%v)\n", method, u, resp.Status, time.Since(start).Round(time.Millisecond))
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &apiError{status: resp.StatusCode}
	if err := json.Unmarshal(data, &e.p); err != nil || e.p.Type == "" {
		e.p = problem.Details{}
		e.body = strings.TrimSpace(string(data))
		if len(e.body) > 200 {
			e.body = e.body[:200] + "..."
		}
	}
	return nil, &exitError{code: ExitFailed, err: e}
}

// unwrapURLError drops url.Error's "Get <url>:" prefix, which repeats the
// URL the message already names.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// call sends a request and returns the body of its 2xx answer.
func (c *client) call(ctx context.Context, method, p string, query url.Values, body any, header http.Header) ([]byte, error) {
	resp, err := c.do(ctx, method, p, query, body, header)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, &exitError{code: ExitUnreachable, err: fmt.Errorf("reading the API's answer: %w", err)}
	}
	return data, nil
}

// callInto sends a request and decodes its 2xx answer into out, returning
// the answer as it came too, which -o json prints.
func (c *client) callInto(ctx context.Context, method, p string, query url.Values, body any, out any) ([]byte, error) {
	data, err := c.call(ctx, method, p, query, body, nil)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return nil, fmt.Errorf("%s %s: the answer is not what this CLI expects: %w", method, p, err)
	}
	return data, nil
}
