package ui_test

import (
	"encoding/base64"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/schedule"
)

// TestLoginRequired checks that no page, and no action, of a dashboard with
// a login answers anything but the way to the login without a valid
// cookie, and that none shows job data.
func TestLoginRequired(t *testing.T) {
	s := start(t, true)
	id := s.submit(`{"function":"sleep","args":{"seconds":"0"}}`)
	forged := "kjobs_token=" + base64.RawURLEncoding.EncodeToString([]byte("not-the-token"))
	tests := []struct {
		method, path, cookie string
		status               int
		location             string
	}{
		{"GET", "/ui", "", http.StatusSeeOther, "/ui/"},
		{"GET", "/ui/", "", http.StatusSeeOther, "/ui/login"},
		{"GET", "/ui/jobs", "", http.StatusSeeOther, "/ui/login"},
		{"GET", "/ui/jobs?status=succeeded", "", http.StatusSeeOther, "/ui/login"},
		{"GET", "/ui/jobs/" + id, "", http.StatusSeeOther, "/ui/login"},
		{"GET", "/ui/schedules", "", http.StatusSeeOther, "/ui/login"},
		{"GET", "/ui/bindings", "", http.StatusSeeOther, "/ui/login"},
		{"GET", "/ui/no-such-page", "", http.StatusSeeOther, "/ui/login"},
		{"GET", "/ui/jobs/" + id, forged, http.StatusSeeOther, "/ui/login"},
		{"GET", "/ui/jobs/" + id, "kjobs_token=%%%", http.StatusSeeOther, "/ui/login"},
		{"GET", "/ui/jobs/" + id, "kjobs_token=" + token, http.StatusSeeOther, "/ui/login"}, // not encoded as the login does
		{"POST", "/ui/jobs/" + id + "/cancel", "", http.StatusSeeOther, "/ui/login"},
		{"POST", "/ui/schedules/x/pause", forged, http.StatusSeeOther, "/ui/login"},
		{"POST", "/ui/logout", "", http.StatusSeeOther, "/ui/login"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			var form url.Values
			if tc.method == "POST" {
				form = url.Values{}
			}
			p := s.browse(tc.method, tc.path, tc.cookie, form, nil)
			if p.status != tc.status || p.header.Get("Location") != tc.location {
				t.Errorf("%d to %q, want %d to %q", p.status, p.header.Get("Location"), tc.status, tc.location)
			}
			if strings.Contains(p.body, id) {
				t.Errorf("the answer shows the job:\n%s", p.body)
			}
		})
	}
	var j struct{ Status string }
	s.api("GET", "/jobs/"+id, "", &j)
	if j.Status == "canceled" {
		t.Error("the job was canceled without a login")
	}
}

// TestLogin logs in with a wrong and a right token, checks the cookie's
// attributes and the headers of the pages, and logs out.
func TestLogin(t *testing.T) {
	s := start(t, true)
	tests := []struct {
		name   string
		form   url.Values
		header map[string]string
		status int
		says   string
	}{
		{"wrong token", url.Values{"token": {"nope"}}, nil, http.StatusUnauthorized, "That token is not valid."},
		{"no token", url.Values{}, nil, http.StatusUnauthorized, "That token is not valid."},
		{"a prefix of the token", url.Values{"token": {token[:5]}}, nil, http.StatusUnauthorized, "That token is not valid."},
		{"from another site", url.Values{"token": {token}}, map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden, "not sent from this dashboard"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := s.browse("POST", "/ui/login", "", tc.form, tc.header)
			if p.status != tc.status || !strings.Contains(p.body, tc.says) || !strings.Contains(p.body, `name="token"`) {
				t.Errorf("%d, want %d and the form again saying %q:\n%s", p.status, tc.status, tc.says, p.body)
			}
			if c := p.header.Get("Set-Cookie"); c != "" {
				t.Errorf("a cookie was set: %s", c)
			}
		})
	}

	for _, proto := range []string{"", "https"} {
		t.Run("cookie with X-Forwarded-Proto "+proto, func(t *testing.T) {
			p := s.browse("POST", "/ui/login", "", url.Values{"token": {token}}, map[string]string{"X-Forwarded-Proto": proto})
			if p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/" {
				t.Fatalf("%d to %q, want 303 to /ui/", p.status, p.header.Get("Location"))
			}
			cookies := (&http.Response{Header: p.header}).Cookies()
			if len(cookies) != 1 {
				t.Fatalf("cookies %v, want one", cookies)
			}
			c := cookies[0]
			if c.Name != "kjobs_token" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/ui" || c.Secure != (proto == "https") || c.MaxAge <= 0 {
				t.Errorf("cookie %q: want kjobs_token, HttpOnly, SameSite=Strict, Path=/ui, Secure only over https, a Max-Age", p.header.Get("Set-Cookie"))
			}
		})
	}

	cookie := s.login()
	p := s.browse("GET", "/ui/", cookie, nil, nil)
	if p.status != http.StatusOK || !strings.Contains(p.body, "Overview") || !strings.Contains(p.body, "<svg") {
		t.Fatalf("GET /ui/ logged in: %d\n%s", p.status, p.body)
	}
	for k, want := range map[string]string{
		"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "same-origin",
		"Cache-Control":           "no-store",
		"Content-Type":            "text/html; charset=utf-8",
	} {
		if got := p.header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if p := s.browse("GET", "/ui/login", cookie, nil, nil); p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/" {
		t.Errorf("the login page when logged in: %d to %q, want 303 to /ui/", p.status, p.header.Get("Location"))
	}
	if p := s.browse("GET", "/ui/static/style.css", "", nil, nil); p.status != http.StatusOK || !strings.HasPrefix(p.header.Get("Content-Type"), "text/css") {
		t.Errorf("the stylesheet, which needs no login: %d %s", p.status, p.header.Get("Content-Type"))
	}

	out := s.browse("POST", "/ui/logout", cookie, url.Values{"csrf": {p.csrf(t)}}, nil)
	cleared := (&http.Response{Header: out.header}).Cookies()
	if out.status != http.StatusSeeOther || len(cleared) != 1 || cleared[0].MaxAge >= 0 {
		t.Errorf("logout: %d, cookies %v; want 303 and the cookie removed", out.status, out.header["Set-Cookie"])
	}
}

// TestActionsNeedCSRF presses a schedule's Pause button from outside the
// dashboard's pages: without the CSRF token, with a wrong one, from another
// origin, or by GET. Only the dashboard's own form pauses it.
func TestActionsNeedCSRF(t *testing.T) {
	s := start(t, true)
	var sc schedule.Schedule
	if code := s.api("POST", "/jobs/schedule", `{"cron":"0 7 * * MON","function":"sleep","args":{"seconds":"0"}}`, &sc); code != http.StatusCreated {
		t.Fatalf("POST /jobs/schedule: %d", code)
	}
	cookie := s.login()
	csrf := s.browse("GET", "/ui/schedules", cookie, nil, nil).csrf(t)
	path := "/ui/schedules/" + sc.ID + "/pause"
	tests := []struct {
		name   string
		method string
		form   url.Values
		header map[string]string
		status int
	}{
		{"no CSRF token", "POST", url.Values{}, nil, http.StatusForbidden},
		{"a wrong CSRF token", "POST", url.Values{"csrf": {"x" + csrf[1:]}}, nil, http.StatusForbidden},
		{"from another origin", "POST", url.Values{"csrf": {csrf}}, map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
		{"with Origin null", "POST", url.Values{"csrf": {csrf}}, map[string]string{"Origin": "null"}, http.StatusForbidden},
		{"neither Origin nor Referer", "POST", url.Values{"csrf": {csrf}}, map[string]string{"Origin": ""}, http.StatusForbidden},
		{"GET", "GET", nil, nil, http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := s.browse(tc.method, path, cookie, tc.form, tc.header)
			if p.status != tc.status {
				t.Errorf("%d, want %d:\n%s", p.status, tc.status, p.body)
			}
			var got schedule.Schedule
			if s.api("GET", "/jobs/schedule/"+sc.ID, "", &got); got.Paused {
				t.Fatal("the schedule was paused")
			}
		})
	}

	// The dashboard's form: same origin by Referer alone, as an old browser
	// sends it, with the page's token.
	p := s.browse("POST", path, cookie, url.Values{"csrf": {csrf}}, map[string]string{"Origin": "", "Referer": s.url + "/ui/schedules"})
	var got schedule.Schedule
	s.api("GET", "/jobs/schedule/"+sc.ID, "", &got)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/schedules" || !got.Paused {
		t.Errorf("the dashboard's Pause: %d to %q, paused %v; want 303 to /ui/schedules, paused", p.status, p.header.Get("Location"), got.Paused)
	}
}

// TestWithoutLogin serves the dashboard of a stack without tokens, as `make
// run` does on loopback: pages need no login, and forms still need the
// CSRF token.
func TestWithoutLogin(t *testing.T) {
	s := start(t, false)
	id := s.submit(`{"function":"sleep","args":{"seconds":"0"}}`)
	var sc schedule.Schedule
	if code := s.api("POST", "/jobs/schedule", `{"cron":"@daily","function":"sleep","args":{"seconds":"0"}}`, &sc); code != http.StatusCreated {
		t.Fatalf("POST /jobs/schedule: %d", code)
	}
	if code := s.api("POST", "/jobs/bindings", `{"name":"uploads","filter":{"type":"dev.example.upload"},"function":"echo"}`, nil); code != http.StatusCreated {
		t.Fatalf("POST /jobs/bindings: %d", code)
	}
	// Each page shows what it lists, in the page's words.
	for path, shows := range map[string]string{
		"/ui/":                     "The last hour",
		"/ui/jobs":                 `href="/ui/jobs/` + id + `"`,
		"/ui/jobs/" + id:           "Attempts",
		"/ui/schedules":            sc.ID,
		"/ui/bindings":             "dev.example.upload",
		"/ui/jobs?binding=uploads": "Jobs of binding uploads",
	} {
		if p := s.browse("GET", path, "", nil, nil); p.status != http.StatusOK || !strings.Contains(p.body, shows) || strings.Contains(p.body, "Log out") {
			t.Errorf("GET %s: %d, want 200 showing %q without a logout button:\n%s", path, p.status, shows, p.body)
		}
	}
	if p := s.browse("GET", "/ui/login", "", nil, nil); p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui/login: %d to %q, want 303 to /ui/", p.status, p.header.Get("Location"))
	}

	// Paging through the API's cursor, one job a page: the newest first.
	newer := s.submit(`{"function":"sleep","args":{"seconds":"0"}}`)
	first := s.browse("GET", "/ui/jobs?limit=1", "", nil, nil)
	next := regexp.MustCompile(`href="(/ui/jobs\?cursor=[^"]+)">Next page`).FindStringSubmatch(first.body)
	if !strings.Contains(first.body, newer) || strings.Contains(first.body, id) || next == nil {
		t.Fatalf("the first page of one job: want the newer job and a next page:\n%s", first.body)
	}
	second := s.browse("GET", html.UnescapeString(next[1]), "", nil, nil)
	if second.status != http.StatusOK || !strings.Contains(second.body, id) || strings.Contains(second.body, newer) || !strings.Contains(second.body, "First page") {
		t.Errorf("the second page: %d, want the older job and a link to the first page:\n%s", second.status, second.body)
	}
	if p := s.browse("GET", "/ui/jobs/no-such-job", "", nil, nil); p.status != http.StatusNotFound || !strings.Contains(p.body, "no-such-job") {
		t.Errorf("GET a missing job: %d, want 404 with the API's detail:\n%s", p.status, p.body)
	}
	if p := s.browse("GET", "/ui/jobs?status=bogus", "", nil, nil); p.status != http.StatusBadRequest || !strings.Contains(p.body, "bogus") {
		t.Errorf("GET the jobs with a bad status: %d, want 400 with the API's detail:\n%s", p.status, p.body)
	}
	path := "/ui/schedules/" + sc.ID + "/pause"
	if p := s.browse("POST", path, "", url.Values{}, nil); p.status != http.StatusForbidden {
		t.Errorf("POST without a CSRF token: %d, want 403", p.status)
	}
	csrf := s.browse("GET", "/ui/schedules", "", nil, nil).csrf(t)
	if p := s.browse("POST", path, "", url.Values{"csrf": {csrf}}, nil); p.status != http.StatusSeeOther {
		t.Errorf("POST with the CSRF token: %d, want 303", p.status)
	}
	var got schedule.Schedule
	if s.api("GET", "/jobs/schedule/"+sc.ID, "", &got); !got.Paused {
		t.Error("the schedule is not paused")
	}

	// The other buttons: a schedule's Delete and a job's Cancel.
	if p := s.browse("POST", "/ui/schedules/"+sc.ID+"/delete", "", url.Values{"csrf": {csrf}}, nil); p.status != http.StatusSeeOther {
		t.Errorf("Delete: %d, want 303", p.status)
	}
	if code := s.api("GET", "/jobs/schedule/"+sc.ID, "", nil); code != http.StatusNotFound {
		t.Errorf("the schedule after its Delete: %d, want 404", code)
	}
	long := s.submit(`{"function":"sleep","args":{"seconds":"60"}}`)
	jobPage := s.browse("GET", "/ui/jobs/"+long, "", nil, nil)
	if !strings.Contains(jobPage.body, "Cancel this job") {
		t.Fatalf("no Cancel button on the page of a job that has not ended:\n%s", jobPage.body)
	}
	if p := s.browse("POST", "/ui/jobs/"+long+"/cancel", "", url.Values{"csrf": {jobPage.csrf(t)}}, nil); p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/jobs/"+long {
		t.Errorf("Cancel: %d to %q, want 303 to the job's page", p.status, p.header.Get("Location"))
	}
	if j := s.wait(long, 10*time.Second); j.Status != job.Canceled {
		t.Errorf("the job after its Cancel: %s, want canceled", j.Status)
	}
	// The cancel stops the attempt, if one started: nothing of the job runs
	// on once the dispatcher has taken it. A child has 10 s between SIGTERM
	// and SIGKILL.
	s.eventually(20*time.Second, func() bool {
		var j job.Job
		s.api("GET", "/jobs/"+long, "", &j)
		return !slices.ContainsFunc(j.Attempts, func(a job.Attempt) bool { return a.Outcome == job.OutcomeRunning })
	})
	if p := s.browse("GET", "/ui/jobs/"+long, "", nil, nil); strings.Contains(p.body, "Cancel this job") {
		t.Error("a canceled job's page still offers to cancel it")
	}
}
