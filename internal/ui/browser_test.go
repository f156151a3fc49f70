package ui_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/schedule"
	"github.com/kjobs/kjobs/internal/testenv"
)

// browser starts a headless chromium of the test's own, with a fresh
// profile, and returns the context that drives it.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(testenv.Chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests may run as root, which the sandbox refuses
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	// The first run starts the browser, which lives as long as its
	// context: it gets no timeout of its own.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", testenv.Chromium(t), err)
	}
	return ctx
}

// stepTimeout bounds each group of browser steps.
const stepTimeout = 30 * time.Second

// do runs the steps in the browser, or fails the test saying what it did.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// read runs the action in the browser and returns what it read.
func read[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// TestBrowser uses the dashboard as a person would, in headless chromium:
// every page sends to the login, a wrong token is refused, the right one
// logs in, a job submitted through the API appears in the list and its
// page shows its attempts, and a schedule's Pause button pauses it. It
// writes screenshots of the job's page (_output/ui/job.png), the list, the
// schedules and the overview.
func TestBrowser(t *testing.T) {
	s := start(t, true)
	// One failure, then a success: the page shows two attempts.
	id := s.submit(`{"function":"flaky","args":{"failures":"1"}}`)
	var sc schedule.Schedule
	if code := s.api("POST", "/jobs/schedule", `{"cron":"0 7 * * MON","timezone":"Asia/Ho_Chi_Minh","function":"sleep","args":{"seconds":"1"},"name":"weekly report"}`, &sc); code != http.StatusCreated {
		t.Fatalf("POST /jobs/schedule: %d", code)
	}
	ctx := browser(t)
	location := func() string { return read(t, ctx, "reading the location", chromedp.Location()) }

	for _, path := range []string{"/ui/", "/ui/jobs", "/ui/jobs/" + id, "/ui/schedules", "/ui/bindings"} {
		do(t, ctx, "opening "+path, chromedp.Navigate(s.url+path))
		text := read(t, ctx, "reading "+path, chromedp.Text(chromedp.CSS("body")))
		if at := location(); at != s.url+"/ui/login" || strings.Contains(text, id) {
			t.Errorf("%s without a login: at %s, want the login page without the job", path, at)
		}
	}

	do(t, ctx, "logging in with a wrong token",
		chromedp.SendKeys(chromedp.CSS("#token"), "wrong-token"),
		chromedp.Click(chromedp.CSS(`.login button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(".login .error")))
	if said := read(t, ctx, "reading the error", chromedp.Text(chromedp.CSS(".login .error"))); said != "That token is not valid." {
		t.Errorf("a wrong token: the page says %q", said)
	}

	do(t, ctx, "logging in",
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS(`.login button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("section.cards")))
	if at := location(); at != s.url+"/ui/" {
		t.Errorf("after the login: at %s, want the overview", at)
	}
	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{s.url + "/ui/"}})
	if err != nil {
		t.Fatal(err)
	}
	if c := cookies.Cookies; len(c) != 1 || c[0].Name != "kjobs_token" || !c[0].HTTPOnly || c[0].SameSite != network.CookieSameSiteStrict || c[0].Path != "/ui" || c[0].Secure {
		for _, c := range c {
			t.Logf("cookie %s: HttpOnly %v, SameSite %s, Path %s, Secure %v", c.Name, c.HTTPOnly, c.SameSite, c.Path, c.Secure)
		}
		t.Error("want one cookie kjobs_token, HttpOnly, SameSite=Strict, Path=/ui, not Secure over plain HTTP")
	}

	link := chromedp.CSS(`a[href="/ui/jobs/` + id + `"]`)
	do(t, ctx, "finding the job in the list", chromedp.Navigate(s.url+"/ui/jobs"), chromedp.WaitVisible(link))
	if j := s.wait(id, 30*time.Second); j.Status != job.Succeeded || len(j.Attempts) != 2 {
		t.Fatalf("job %s with %d attempts, want succeeded at the second", j.Status, len(j.Attempts))
	}
	do(t, ctx, "reloading the list", chromedp.Reload(), chromedp.WaitVisible(link))
	screenshot(t, ctx, "jobs.png")
	do(t, ctx, "opening the job's page",
		chromedp.Click(link),
		chromedp.WaitVisible(chromedp.CSS("section.attempt")))
	status := read(t, ctx, "reading the job's status", chromedp.Text(chromedp.CSS("h1 .st")))
	if at := location(); at != s.url+"/ui/jobs/"+id || status != "succeeded" {
		t.Errorf("at %s with status %q, want the job's page, succeeded", at, status)
	}
	attempts := read(t, ctx, "reading the attempts",
		chromedp.Evaluate[[]string](`[...document.querySelectorAll("section.attempt")].map(e => e.innerText)`))
	if len(attempts) != 2 {
		t.Fatalf("%d attempts shown, want 2", len(attempts))
	}
	for i, want := range []string{"Attempt 1 failed", "Attempt 2 succeeded"} {
		a := attempts[i]
		// Every attempt shows its Job name, its times, its outcome and a
		// log, or the API's reason for having none.
		if !strings.HasPrefix(a, want) || !strings.Contains(a, "kjobs-"+id) || !strings.Contains(a, "Started") ||
			!strings.Contains(a, "Ended") || !strings.Contains(a, "Log") {
			t.Errorf("attempt %d reads:\n%s\nwant it to start %q and show its Job, times and log", i+1, a, want)
		}
	}
	screenshot(t, ctx, "job.png")

	row := "#schedule-" + sc.ID
	do(t, ctx, "pausing the schedule",
		chromedp.Navigate(s.url+"/ui/schedules"),
		chromedp.Click(chromedp.CSS(row+` form[action$="/pause"] button`)),
		chromedp.WaitVisible(chromedp.CSS(row+" .st-paused")),
		chromedp.WaitVisible(chromedp.CSS(row+` form[action$="/resume"]`)))
	var got schedule.Schedule
	if s.api("GET", "/jobs/schedule/"+sc.ID, "", &got); !got.Paused {
		t.Error("the API shows the schedule not paused after its Pause button")
	}
	screenshot(t, ctx, "schedules.png")

	do(t, ctx, "opening the overview", chromedp.Navigate(s.url+"/ui/"), chromedp.WaitVisible(chromedp.CSS("svg.chart")))
	if bars := read(t, ctx, "counting the chart's bars", chromedp.Evaluate[int](`document.querySelectorAll("svg.chart rect.ok").length`)); bars != 1 {
		t.Errorf("%d minutes with a succeeded job in the chart, want 1", bars)
	}
	screenshot(t, ctx, "overview.png")

	do(t, ctx, "logging out",
		chromedp.Click(chromedp.CSS(".logout button")),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.Navigate(s.url+"/ui/jobs/"+id))
	if at := location(); at != s.url+"/ui/login" {
		t.Errorf("the job's page after the logout: at %s, want the login", at)
	}
}

// screenshot writes the page to _output/ui/name, a PNG for people to look
// at (_output is git-ignored).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := read(t, ctx, "taking a screenshot", chromedp.FullScreenshot(100))
	shot := filepath.Join(repoRoot(t), "_output", "ui", name)
	if err := os.MkdirAll(filepath.Dir(shot), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
}

// repoRoot returns the module's root, where _output is.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
