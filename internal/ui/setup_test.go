package ui_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/stack"
	"github.com/kjobs/kjobs/internal/stack/stacktest"
	"github.com/kjobs/kjobs/internal/testenv"
)

var processor string

func TestMain(m *testing.M) {
	testenv.Main(m, map[*string]string{&processor: "github.com/kjobs/kjobs/processor"})
}

// token is the one token of the stacks that have a login.
const token = "ui-test-token"

// site is a local stack serving the API and the dashboard.
type site struct {
	t   *testing.T
	url string
	// token is what the API is called with: token, or "" without a login.
	token string
}

// start runs the local stack on a real redis-server until the test ends,
// with a tokens file when withAuth is set.
func start(t *testing.T, withAuth bool) site {
	t.Helper()
	s := site{t: t}
	if withAuth {
		s.token = token
	}
	s.url = stacktest.Start(t, processor, func(cfg *stack.Config) {
		if !withAuth {
			return
		}
		cfg.TokensFile = filepath.Join(t.TempDir(), "tokens")
		if err := os.WriteFile(cfg.TokensFile, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}).API
	return s
}

// api calls the API with the bearer token and decodes its JSON answer.
func (s site) api(method, path, body string, out any) int {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

// submit creates a job through the API and returns its ID.
func (s site) submit(body string) string {
	s.t.Helper()
	var j job.Job
	if code := s.api("POST", "/jobs", body, &j); code != http.StatusAccepted {
		s.t.Fatalf("POST /jobs %s: %d", body, code)
	}
	return j.ID
}

// wait polls the job over the API until it is terminal.
func (s site) wait(id string, within time.Duration) job.Job {
	s.t.Helper()
	var j job.Job
	s.eventually(within, func() bool {
		s.api("GET", "/jobs/"+id, "", &j)
		return j.Status.Terminal()
	})
	return j
}

func (s site) eventually(within time.Duration, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("not so within %v", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// page is one answer of the dashboard, not followed if a redirect.
type page struct {
	status int
	header http.Header
	body   string
}

// browse sends a request to the dashboard as a browser would, without
// following redirects: a form's body, this site's Origin unless the header
// says otherwise, and the cookie when not "".
func (s site) browse(method, path, cookie string, form url.Values, header map[string]string) page {
	s.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, s.url+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if method == http.MethodPost {
		req.Header.Set("Origin", s.url)
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	client := http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return page{status: resp.StatusCode, header: resp.Header, body: string(data)}
}

// login logs in with the token and returns the cookie to send.
func (s site) login() string {
	s.t.Helper()
	p := s.browse("POST", "/ui/login", "", url.Values{"token": {token}}, nil)
	if p.status != http.StatusSeeOther {
		s.t.Fatalf("POST /ui/login: %d %s", p.status, p.body)
	}
	for _, c := range (&http.Response{Header: p.header}).Cookies() {
		if c.Name == "kjobs_token" {
			return c.Name + "=" + c.Value
		}
	}
	s.t.Fatalf("POST /ui/login set no kjobs_token cookie: %v", p.header)
	return ""
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token of a page's forms.
func (p page) csrf(t *testing.T) string {
	t.Helper()
	m := csrfInput.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", p.body)
	}
	return m[1]
}
