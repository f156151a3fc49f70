package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/schedule"
	"github.com/kjobs/kjobs/internal/stack"
	"github.com/kjobs/kjobs/internal/testenv"
)

var uuidLine = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// firstLine returns the first line of s.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// decodeJob reads the output of -o json as the API's own job type.
func decodeJob(t *testing.T, out string) job.Job {
	t.Helper()
	var j job.Job
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	return j
}

// TestRunWait runs jobs with --wait: the exit code is the job's outcome,
// and a line is printed as each attempt starts and ends.
func TestRunWait(t *testing.T) {
	t.Parallel()
	u := newUser(t, "KJOBS_URL="+startStack(t))
	tests := []struct {
		name     string
		args     []string
		code     int
		attempts int
		status   job.Status
	}{
		{"echo succeeds", []string{"echo", "name=report"}, ExitOK, 1, job.Succeeded},
		{"sleep succeeds", []string{"sleep", "seconds=0"}, ExitOK, 1, job.Succeeded},
		{"fail fails after its retries", []string{"fail", "message=boom"}, ExitFailed, 3, job.Failed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := user{t: t, env: u.env, bin: u.bin}
			r := u.must(tc.code, append([]string{"run", "--wait"}, tc.args...)...)
			id := firstLine(r.stdout)
			if !uuidLine.MatchString(id) {
				t.Fatalf("first line %q, want the job's ID", id)
			}
			for n := 1; n <= tc.attempts; n++ {
				started := "attempt " + strconv.Itoa(n) + "  kjobs-" + id + "-" + strconv.Itoa(n) + "  started"
				if !strings.Contains(r.stdout, started) {
					t.Errorf("no line %q in\n%s", started, r.stdout)
				}
			}
			if want := "job " + id + " " + string(tc.status); !strings.Contains(r.stdout, want) {
				t.Errorf("no line %q in\n%s", want, r.stdout)
			}
			if tc.code == ExitFailed {
				if !strings.Contains(r.stdout, "failed after") || !strings.Contains(r.stdout, ": boom") {
					t.Errorf("the failed attempts' lines should say failed and boom:\n%s", r.stdout)
				}
				if !strings.Contains(r.stderr, "kjobs: job "+id+" failed") {
					t.Errorf("stderr %q should say the job failed", r.stderr)
				}
			}
			j := decodeJob(t, u.must(ExitOK, "get", id, "-o", "json").stdout)
			if j.Status != tc.status || len(j.Attempts) != tc.attempts {
				t.Errorf("job %s with %d attempts, want %s with %d", j.Status, len(j.Attempts), tc.status, tc.attempts)
			}
		})
	}
}

// TestJobCommands covers run without --wait, get in every format, list
// with its paging, cancel and the key=value arguments.
func TestJobCommands(t *testing.T) {
	t.Parallel()
	u := newUser(t, "KJOBS_URL="+startStack(t))

	t.Run("key=value arguments are JSON when they parse as JSON", func(t *testing.T) {
		r := u.must(ExitOK, "run", "echo", "n=12345678901234567890", "ok=true", `size={"w":1.5}`, "name=report", `quoted="42"`, "--wait", "--label", "suite=cli")
		j := decodeJob(t, u.must(ExitOK, "get", firstLine(r.stdout), "-o", "json").stdout)
		want := job.Args{"n": json.Number("12345678901234567890"), "ok": true, "size": map[string]any{"w": json.Number("1.5")}, "name": "report", "quoted": "42"}
		if diff := cmp.Diff(want, j.Args); diff != "" {
			t.Errorf("args (-want +got):\n%s", diff)
		}
	})

	t.Run("-o json, yaml and table show the same job", func(t *testing.T) {
		r := u.must(ExitOK, "run", "sleep", "seconds=0", "--label", "suite=cli", "--timeout", "30s", "-o", "json")
		created := decodeJob(t, r.stdout)
		if created.Function != "sleep" || created.Labels["suite"] != "cli" || time.Duration(created.Timeout) != 30*time.Second {
			t.Fatalf("run -o json printed %+v, want the sleep job with its label and timeout", created)
		}
		u.must(ExitOK, "run", "--wait", "sleep", "seconds=0") // the job above has run by the time this one has
		asJSON := decodeJob(t, u.must(ExitOK, "get", created.ID, "-o", "json").stdout)
		var asYAML job.Job
		if err := yaml.Unmarshal([]byte(u.must(ExitOK, "get", created.ID, "-o", "yaml").stdout), &asYAML); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(asJSON, asYAML); diff != "" {
			t.Errorf("-o yaml differs from -o json (-json +yaml):\n%s", diff)
		}
		table := u.must(ExitOK, "get", created.ID).stdout
		for _, want := range []string{"ID:", created.ID, "Status:", "ATTEMPT", "kjobs-" + created.ID + "-1", "OUTCOME"} {
			if !strings.Contains(table, want) {
				t.Errorf("the table lacks %q:\n%s", want, table)
			}
		}
	})

	t.Run("an Idempotency-Key returns the first job", func(t *testing.T) {
		first := u.must(ExitOK, "run", "echo", "--idempotency-key", "cli-key-1").stdout
		again := u.must(ExitOK, "run", "echo", "--idempotency-key", "cli-key-1").stdout
		if first != again {
			t.Errorf("the same key printed %q, then %q", first, again)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		id := firstLine(u.must(ExitOK, "run", "sleep", "seconds=30").stdout)
		if out := u.must(ExitOK, "cancel", id).stdout; out != "job "+id+" canceled\n" {
			t.Errorf("cancel printed %q", out)
		}
		if j := decodeJob(t, u.must(ExitOK, "cancel", id, "-o", "json").stdout); j.Status != job.Canceled {
			t.Errorf("a second cancel -o json shows the job %s, want canceled", j.Status)
		}
		done := firstLine(u.must(ExitOK, "run", "--wait", "echo").stdout)
		r := u.must(ExitFailed, "cancel", done)
		if !strings.Contains(r.stderr, "kjobs: job-finished: job "+done+" has succeeded") {
			t.Errorf("cancel of a finished job printed %q, want the API's job-finished problem", r.stderr)
		}
	})

	t.Run("list pages with --cursor", func(t *testing.T) {
		for range 3 {
			u.must(ExitOK, "run", "echo", "--label", "page=cli")
		}
		var all jobPage
		if err := json.Unmarshal([]byte(u.must(ExitOK, "list", "--label", "page=cli", "-o", "json").stdout), &all); err != nil {
			t.Fatal(err)
		}
		if len(all.Jobs) != 3 {
			t.Fatalf("list -o json: %d jobs, want 3", len(all.Jobs))
		}
		var seen []string
		args := []string{"list", "--label", "page=cli", "--limit", "2"}
		for page := 0; ; page++ {
			r := u.must(ExitOK, args...)
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			if !strings.HasPrefix(lines[0], "ID ") {
				t.Fatalf("table header %q", lines[0])
			}
			for _, l := range lines[1:] {
				seen = append(seen, strings.Fields(l)[0])
			}
			cursor, ok := strings.CutPrefix(strings.TrimSpace(r.stderr), "next: --cursor ")
			if !ok {
				if r.stderr != "" {
					t.Fatalf("stderr %q, want the next cursor or nothing", r.stderr)
				}
				break
			}
			args = []string{"list", "--label", "page=cli", "--limit", "2", "--cursor", cursor}
		}
		want := []string{all.Jobs[0].ID, all.Jobs[1].ID, all.Jobs[2].ID}
		if diff := cmp.Diff(want, seen); diff != "" {
			t.Errorf("paged IDs, newest first (-want +got):\n%s", diff)
		}
	})
}

// TestExitCodes checks the documented exit codes, and that an error
// prints the API's problem.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	url := startStack(t)
	closed := "http://127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"unknown flag", []string{"get", "--bogus"}, ExitUsage, "unknown flag: --bogus"},
		{"unknown command", []string{"nope"}, ExitUsage, `unknown command "nope"`},
		{"missing argument", []string{"get"}, ExitUsage, "missing ID"},
		{"too many arguments", []string{"cancel", "a", "b"}, ExitUsage, `unexpected argument "b"`},
		{"missing function", []string{"run"}, ExitUsage, "missing FUNCTION"},
		{"bad key=value", []string{"run", "echo", "novalue"}, ExitUsage, `argument "novalue": want key=value`},
		{"empty key", []string{"run", "echo", "=1"}, ExitUsage, "want key=value"},
		{"key twice", []string{"run", "echo", "a=1", "a=2"}, ExitUsage, "a is given twice"},
		{"bad label", []string{"run", "echo", "--label", "team"}, ExitUsage, "--label"},
		{"bad output", []string{"stats", "-o", "xml"}, ExitUsage, `--output "xml"`},
		{"bad duration", []string{"run", "echo", "--timeout", "soon"}, ExitUsage, "invalid argument"},
		{"schedule without cron", []string{"schedule", "create", "echo"}, ExitUsage, "--cron is required"},
		{"URL not http", []string{"stats", "--url", "ftp://x"}, ExitUsage, "not an http:// or https:// URL"},
		{"closed port", []string{"stats", "--url", closed}, ExitUnreachable, "connection refused"},
		{"unknown host", []string{"list", "--url", "http://kjobs.invalid"}, ExitUnreachable, "is unreachable"},
		{"unknown function", []string{"run", "nosuchfunction"}, ExitFailed, `kjobs: unknown-function: `},
		{"args the schema refuses", []string{"run", "sleep", "seconds=-1"}, ExitFailed, "kjobs: invalid-args: "},
		{"timeout above the deadline", []string{"run", "sleep", "seconds=1", "--timeout", "2h"}, ExitFailed, "kjobs: invalid-field: timeout: "},
		{"no such job", []string{"get", "0199a6a0-1c2b-7d3e-8f40-123456789abc"}, ExitFailed, `kjobs: not-found: no job "0199a6a0-1c2b-7d3e-8f40-123456789abc"`},
		{"bad status", []string{"list", "--status", "sleeping"}, ExitFailed, "kjobs: invalid-query: "},
		{"bad cron", []string{"schedule", "create", "--cron", "every day", "echo"}, ExitFailed, "kjobs: invalid-cron: "},
		{"bad timezone", []string{"schedule", "create", "--cron", "@daily", "--tz", "Mars/Olympus", "echo"}, ExitFailed, "kjobs: invalid-timezone: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newUser(t, "KJOBS_URL="+url).must(tc.code, tc.args...)
			if !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("stderr %q, want it to hold %q", r.stderr, tc.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
}

// TestCompletion checks that each shell's completion script is generated,
// and that the completion it calls back for offers the commands.
func TestCompletion(t *testing.T) {
	t.Parallel()
	u := newUser(t)
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		r := u.must(ExitOK, "completion", shell)
		// Cobra's scripts ask the binary for completions: `kjobs __complete`.
		if !strings.Contains(r.stdout, "kjobs") || !strings.Contains(r.stdout, "__complete") {
			t.Errorf("completion %s: a script of %d bytes that never calls kjobs __complete", shell, len(r.stdout))
		}
	}
	bash := u.must(ExitOK, "completion", "bash").stdout
	if !strings.Contains(bash, "complete -o default -F __start_kjobs kjobs") {
		t.Errorf("the bash script does not register itself for kjobs")
	}
	tests := []struct {
		line []string
		want []string
	}{
		{[]string{""}, []string{"run", "get", "list", "cancel", "logs", "stats", "schedule", "binding", "completion", "version"}},
		{[]string{"schedule", ""}, []string{"create", "list", "get", "pause", "resume", "delete"}},
		{[]string{"binding", ""}, []string{"list", "get", "delete"}},
		{[]string{"list", "--status", ""}, []string{"queued", "running", "succeeded", "failed", "canceled"}},
		{[]string{"get", "x", "-o", ""}, []string{"json", "yaml", "table"}},
	}
	for _, tc := range tests {
		out := u.must(ExitOK, append([]string{"__complete"}, tc.line...)...).stdout
		var got []string
		for _, l := range strings.Split(out, "\n") {
			if l != "" && !strings.HasPrefix(l, ":") {
				got = append(got, strings.Split(l, "\t")[0])
			}
		}
		for _, w := range tc.want {
			if !strings.Contains(" "+strings.Join(got, " ")+" ", " "+w+" ") {
				t.Errorf("completing %q offers %v, not %q", tc.line, got, w)
			}
		}
	}
}

// TestSchedules drives a schedule through create, list, get, pause,
// resume and delete.
func TestSchedules(t *testing.T) {
	t.Parallel()
	u := newUser(t, "KJOBS_URL="+startStack(t))
	r := u.must(ExitOK, "schedule", "create", "--cron", "0 7 * * MON", "--tz", "Asia/Ho_Chi_Minh", "--name", "monday report", "sleep", "seconds=1", "-o", "json")
	var sc schedule.Schedule
	if err := json.Unmarshal([]byte(r.stdout), &sc); err != nil {
		t.Fatal(err)
	}
	want := schedule.Schedule{ID: sc.ID, Name: "monday report", Cron: "0 7 * * MON", Timezone: "Asia/Ho_Chi_Minh", Function: "sleep", Args: job.Args{"seconds": json.Number("1")}}
	if diff := cmp.Diff(want, sc, cmpSchedule); diff != "" || len(sc.NextRuns) == 0 {
		t.Fatalf("schedule create -o json (-want +got):\n%s\nnext runs: %v", diff, sc.NextRuns)
	}
	if loc, _ := time.LoadLocation("Asia/Ho_Chi_Minh"); sc.NextRuns[0].In(loc).Weekday() != time.Monday || sc.NextRuns[0].In(loc).Hour() != 7 {
		t.Errorf("next run %v is not a Monday 07:00 in Ho Chi Minh City", sc.NextRuns[0])
	}

	if list := u.must(ExitOK, "schedule", "list").stdout; !strings.Contains(list, sc.ID) || !strings.Contains(list, "0 7 * * MON") {
		t.Errorf("schedule list lacks the schedule:\n%s", list)
	}
	paused := func(args ...string) bool {
		t.Helper()
		var got schedule.Schedule
		if err := yaml.Unmarshal([]byte(u.must(ExitOK, append(args, "-o", "yaml")...).stdout), &got); err != nil {
			t.Fatal(err)
		}
		return got.Paused
	}
	if !paused("schedule", "pause", sc.ID) || !paused("schedule", "get", sc.ID) {
		t.Error("schedule pause: the schedule is not paused")
	}
	if table := u.must(ExitOK, "schedule", "get", sc.ID).stdout; !regexp.MustCompile(`Paused:\s+true`).MatchString(table) {
		t.Errorf("schedule get does not show it paused:\n%s", table)
	}
	if paused("schedule", "resume", sc.ID) {
		t.Error("schedule resume: the schedule is still paused")
	}
	if out := u.must(ExitOK, "schedule", "delete", sc.ID).stdout; out != "schedule "+sc.ID+" deleted\n" {
		t.Errorf("schedule delete printed %q", out)
	}
	if r := u.must(ExitFailed, "schedule", "get", sc.ID); !strings.Contains(r.stderr, "not-found") {
		t.Errorf("schedule get of a deleted schedule: %q", r.stderr)
	}
	if list := u.must(ExitOK, "schedule", "list").stdout; strings.Contains(list, sc.ID) {
		t.Errorf("schedule list still shows the deleted schedule:\n%s", list)
	}
}

// cmpSchedule compares the parts of a schedule a request sets.
var cmpSchedule = cmp.FilterPath(func(p cmp.Path) bool {
	name := p.Last().String()
	return name == ".NextRuns" || name == ".CreatedAt"
}, cmp.Ignore())

// TestBindings lists, shows and deletes a binding made through the API.
func TestBindings(t *testing.T) {
	t.Parallel()
	url := startStack(t)
	u := newUser(t, "KJOBS_URL="+url)
	resp, err := http.Post(url+"/jobs/bindings", "application/json",
		strings.NewReader(`{"name":"orders","filter":{"type":"com.example.order"},"function":"echo","args":{"via":"binding"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /jobs/bindings: %d", resp.StatusCode)
	}
	if list := u.must(ExitOK, "binding", "list").stdout; !regexp.MustCompile(`orders\s+echo\s+type=com.example.order`).MatchString(list) {
		t.Errorf("binding list:\n%s", list)
	}
	var b bindingView
	if err := json.Unmarshal([]byte(u.must(ExitOK, "binding", "get", "orders", "-o", "json").stdout), &b); err != nil {
		t.Fatal(err)
	}
	if b.Name != "orders" || b.Function != "echo" || b.Filter["type"] != "com.example.order" {
		t.Errorf("binding get -o json: %+v", b)
	}
	u.must(ExitOK, "binding", "delete", "orders")
	if r := u.must(ExitFailed, "binding", "get", "orders"); !strings.Contains(r.stderr, `not-found: no binding "orders"`) {
		t.Errorf("binding get of a deleted binding: %q", r.stderr)
	}
}

// TestStats checks that stats shows the API's counters, and that --watch
// prints them again every interval until interrupted.
func TestStats(t *testing.T) {
	t.Parallel()
	url := startStack(t)
	u := newUser(t, "KJOBS_URL="+url)
	u.must(ExitOK, "run", "--wait", "echo")
	u.must(ExitOK, "cancel", firstLine(u.must(ExitOK, "run", "sleep", "seconds=30").stdout))

	resp, err := http.Get(url + "/jobs/stats")
	if err != nil {
		t.Fatal(err)
	}
	var want job.Stats
	err = json.NewDecoder(resp.Body).Decode(&want)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if want.Succeeded != 1 || want.Canceled != 1 {
		t.Fatalf("GET /jobs/stats = %+v, want a success and a cancel", want)
	}
	var got job.Stats
	if err := json.Unmarshal([]byte(u.must(ExitOK, "stats", "-o", "json").stdout), &got); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("stats -o json = %+v, GET /jobs/stats = %+v", got, want)
	}
	table := u.must(ExitOK, "stats").stdout
	for _, line := range []string{`succeeded\s+1`, `canceled\s+1`, `failed\s+0`, `running\s+0`} {
		if !regexp.MustCompile(`(?m)^` + line + `$`).MatchString(table) {
			t.Errorf("stats lacks a line %s:\n%s", line, table)
		}
	}

	t.Run("--watch", func(t *testing.T) {
		cmd := exec.Command(kjobsBin, "stats", "--watch", "--interval", "100ms")
		cmd.Env = append(cleanEnv(t), "KJOBS_URL="+url)
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("stats --watch, interrupted: %v, want exit 0", err)
		}
		// Not a terminal: one block per interval, none drawn over.
		if n := strings.Count(stdout.String(), "\nsucceeded"); n < 3 {
			t.Errorf("%d blocks in 1.5s at 100ms:\n%s", n, stdout.String())
		}
		if strings.Contains(stdout.String(), "\x1b[") {
			t.Errorf("escape sequences written to a pipe:\n%q", stdout.String())
		}
	})

	t.Run("--watch on a terminal redraws in place", func(t *testing.T) {
		c := &client{base: url, http: http.DefaultClient}
		ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
		defer cancel()
		var out bytes.Buffer
		if err := watchStats(ctx, c, &out, "table", 100*time.Millisecond, true); err != nil {
			t.Fatal(err)
		}
		// A time line and 8 counters, drawn over from the second time on.
		if n := strings.Count(out.String(), "\x1b[9A\x1b[J"); n < 2 {
			t.Errorf("%d redraws in 600ms at 100ms:\n%q", n, out.String())
		}
	})
}

// TestFollowOnTerminal checks the spinner that run --wait shows on a
// terminal: drawn on the current line and cleared before each line.
func TestFollowOnTerminal(t *testing.T) {
	t.Parallel()
	url := startStack(t)
	id := firstLine(newUser(t, "KJOBS_URL="+url).must(ExitOK, "run", "sleep", "seconds=1").stdout)
	var out bytes.Buffer
	j, raw, err := follow(context.Background(), &client{base: url, http: http.DefaultClient}, id, &out, true)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != job.Succeeded || !json.Valid(raw) {
		t.Fatalf("follow returned %s and %q", j.Status, raw)
	}
	s := out.String()
	if !regexp.MustCompile(`\r[|/\\-] (queued|running) [0-9.]+m?s\x1b\[K`).MatchString(s) {
		t.Errorf("no spinner line in %q", s)
	}
	ended := regexp.MustCompile(`\r\x1b\[Kattempt 1  kjobs-` + id + `-1  succeeded after [0-9.]+m?s: slept 1s\njob ` + id + ` succeeded after [0-9.]+m?s\n$`)
	if !strings.Contains(s, "\r\x1b[Kattempt 1  kjobs-"+id+"-1  started\n") || !ended.MatchString(s) {
		t.Errorf("the spinner is not cleared before the attempt's and the job's lines: %q", s)
	}
}

// TestLogs reads an attempt's output through GET /jobs/{id}/logs. The
// route is the logs helper's part of issue 9: until it is merged, the API
// answers 404 "no route" and the first case fails.
func TestLogs(t *testing.T) {
	t.Parallel()
	u := newUser(t, "KJOBS_URL="+startStack(t))
	id := firstLine(u.must(ExitOK, "run", "--wait", "echo", "name=logged").stdout)
	for _, args := range [][]string{{"logs", id}, {"logs", id, "--attempt", "1"}, {"logs", id, "-f"}} {
		out := u.must(ExitOK, args...).stdout
		// The processor logs JSON lines to stderr, which the log holds.
		if !strings.Contains(out, "function succeeded") || !strings.Contains(out, "logged") {
			t.Errorf("kjobs %s printed %q, want the attempt's output", strings.Join(args, " "), out)
		}
	}
	// -f on a running attempt streams until the attempt ends: the line
	// the processor logs last is there.
	running := firstLine(u.must(ExitOK, "run", "sleep", "seconds=2").stdout)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if j := decodeJob(t, u.must(ExitOK, "get", running, "-o", "json").stdout); j.Status == job.Running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sleep job is not running after 10s")
		}
	}
	if out := u.must(ExitOK, "logs", running, "-f").stdout; !strings.Contains(out, "starting function") || !strings.Contains(out, "function succeeded") {
		t.Errorf("logs -f of a running attempt printed %q, want its output to its end", out)
	}
	for _, args := range [][]string{{"logs", id, "--attempt", "2"}, {"logs", "0199a6a0-1c2b-7d3e-8f40-123456789abc"}} {
		if r := u.must(ExitFailed, args...); !strings.Contains(r.stderr, "kjobs: not-found: ") {
			t.Errorf("kjobs %s: stderr %q, want the not-found problem", strings.Join(args, " "), r.stderr)
		}
	}
}

// TestToken checks the token's three sources against an API that asks for
// one, and that no output ever shows it.
func TestToken(t *testing.T) {
	t.Parallel()
	const token, wrong = "s3cret-token-4b1d", "wr0ng-token-77aa"
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := startStack(t, func(c *stack.Config) { c.TokensFile = tokens })
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte("url: "+url+"\ntoken: "+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	xdg := filepath.Join(dir, "xdg")
	if err := os.MkdirAll(filepath.Join(xdg, "kjobs"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(xdg, "kjobs", "config.yaml"), []byte("url: "+url+"\ntoken: "+wrong+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		env    []string
		args   []string
		code   int
		stderr string
	}{
		{"no token", []string{"KJOBS_URL=" + url}, nil, ExitFailed, "kjobs: unauthorized: send the header Authorization: Bearer <token>"},
		{"wrong token", []string{"KJOBS_URL=" + url}, []string{"--token", wrong}, ExitFailed, "kjobs: unauthorized: the bearer token is not valid"},
		{"--token", []string{"KJOBS_URL=" + url}, []string{"--token", token}, ExitOK, ""},
		{"KJOBS_TOKEN", []string{"KJOBS_URL=" + url, "KJOBS_TOKEN=" + token}, nil, ExitOK, ""},
		{"KJOBS_CONFIG", []string{"KJOBS_CONFIG=" + config}, nil, ExitOK, ""},
		{"the default config file's wrong token", []string{"XDG_CONFIG_HOME=" + xdg}, nil, ExitFailed, "the bearer token is not valid"},
		{"KJOBS_TOKEN wins over the config file", []string{"XDG_CONFIG_HOME=" + xdg, "KJOBS_TOKEN=" + token}, nil, ExitOK, ""},
		{"--token wins over KJOBS_TOKEN", []string{"KJOBS_URL=" + url, "KJOBS_TOKEN=" + wrong}, []string{"--token", token}, ExitOK, ""},
		{"KJOBS_CONFIG that does not exist", []string{"KJOBS_CONFIG=" + filepath.Join(dir, "none.yaml")}, nil, ExitUsage, "config file: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := newUser(t, tc.env...)
			for _, cmd := range [][]string{{"stats", "-v"}, {"run", "echo", "-v", "--wait"}, {"list", "-o", "yaml", "-v"}} {
				r := u.must(tc.code, append(cmd, tc.args...)...)
				if !strings.Contains(r.stderr, tc.stderr) {
					t.Errorf("kjobs %s: stderr %q, want it to hold %q", cmd, r.stderr, tc.stderr)
				}
				for _, secret := range []string{token, wrong} {
					if strings.Contains(r.stdout+r.stderr, secret) {
						t.Errorf("kjobs %s printed a token:\nstdout: %s\nstderr: %s", cmd, r.stdout, r.stderr)
					}
				}
				if tc.code != ExitUsage && !strings.Contains(r.stderr, " "+url+"/jobs") {
					t.Errorf("kjobs %s -v: stderr %q does not show the requests", cmd, r.stderr)
				}
			}
		})
	}
}

// TestPlugin runs the binary as kn runs the plugin kn-jobs: by the path of
// a link named kn-jobs, as make build makes, with the arguments after
// `kn jobs`.
func TestPlugin(t *testing.T) {
	t.Parallel()
	link := filepath.Join(t.TempDir(), PluginName)
	if err := os.Symlink(kjobsBin, link); err != nil {
		t.Fatal(err)
	}
	kn := user{t: t, env: []string{"KJOBS_URL=" + startStack(t)}, bin: link}
	help := kn.must(ExitOK, "--help").stdout
	if !strings.Contains(help, "kn jobs [command]") || !strings.Contains(help, "Exit codes:") {
		t.Errorf("kn-jobs --help does not show kn jobs:\n%s", help)
	}
	if help := kn.must(ExitOK, "run", "--help").stdout; !strings.Contains(help, "kn jobs run FUNCTION") {
		t.Errorf("kn-jobs run --help does not show kn jobs run:\n%s", help)
	}
	if help := newUser(t).must(ExitOK, "--help").stdout; strings.Contains(help, "kn jobs") {
		t.Errorf("kjobs --help shows kn jobs:\n%s", help)
	}
	r := kn.must(ExitOK, "run", "sleep", "seconds=1", "--wait")
	if !strings.Contains(r.stdout, "succeeded") {
		t.Errorf("kn-jobs run --wait:\n%s", r.stdout)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	if out := newUser(t).must(ExitOK, "version").stdout; !strings.HasPrefix(out, "kjobs ") || !strings.Contains(out, "go1.") {
		t.Errorf("version printed %q", out)
	}
}
