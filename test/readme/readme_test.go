// Package readme runs the README's sessions as a reader would, so that they
// stay true.
package readme

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWriteYourOwnFunction runs the commands of the README's "Write your own
// function" word for word, in an empty folder, and checks that they print
// what the README says they print, and that its main.go is examples/resize's.
func TestWriteYourOwnFunction(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := sectionOf(t, string(readme), "## Write your own function")
	blocks := fenced(section)
	if len(blocks) < 2 || blocks[0].lang != "sh" {
		t.Fatalf("the section has no sh block followed by its output; blocks: %+v", blocks)
	}
	script, printed := blocks[0].body, blocks[1].body

	main, err := os.ReadFile(filepath.Join(root, "examples/resize/main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(script, "cat > main.go <<'EOF'\n"+string(main)+"EOF\n") {
		t.Error("the README's main.go is not examples/resize/main.go; make them the same")
	}

	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		switch name, _, _ := strings.Cut(kv, "="); name {
		case "REDIS_URL", "PORT", "KJOBS", "KJOBS_HOST", "KJOBS_RUNNER", "KJOBS_AUTH_TOKENS_FILE", "KJOBS_FUNCTIONS_FILE",
			"MAKEFLAGS", "MFLAGS", "MAKELEVEL":
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "KJOBS="+root, "PORT="+strconv.Itoa(freePort(t)))
	// The session starts kjobs in the background; a group of its own lets
	// the test stop whatever is left of it, whether the session ended well
	// or not.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "resize", "kjobs.log"))
		t.Fatalf("the session failed: %v\nstdout:\n%s\nstderr:\n%s\nkjobs.log:\n%s", err, &stdout, &stderr, log)
	}
	// What the session prints besides go's and make's own lines is
	// exactly what the README shows.
	var got []string
	for line := range strings.Lines(stdout.String()) {
		if strings.HasPrefix(line, "{") {
			got = append(got, line)
		}
	}
	if want := printed; strings.Join(got, "") != want {
		t.Errorf("the session printed\n%s\nthe README says\n%s", strings.Join(got, ""), want)
	}
}

// sectionOf returns the text under heading, up to the next heading of the
// same level.
func sectionOf(t *testing.T, doc, heading string) string {
	t.Helper()
	_, after, ok := strings.Cut(doc, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README.md has no %q", heading)
	}
	if end := strings.Index(after, "\n## "); end >= 0 {
		after = after[:end]
	}
	return after
}

type block struct{ lang, body string }

// fenced returns the ``` blocks of a Markdown text, in order.
func fenced(text string) []block {
	var blocks []block
	var cur *block
	for line := range strings.Lines(text) {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &block{lang: strings.TrimSpace(strings.TrimPrefix(line, "```"))}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.body += line
		}
	}
	return blocks
}

// freePort returns a loopback port that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
