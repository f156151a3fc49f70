package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kjobs/kjobs/internal/stack"
	"github.com/kjobs/kjobs/internal/stack/stacktest"
	"github.com/kjobs/kjobs/internal/testenv"
)

// The binaries the tests run: the CLI itself, so that exit codes are those
// of a real process, and the processor that the local stack's runner
// starts for each attempt.
var kjobsBin, processor string

func TestMain(m *testing.M) {
	testenv.Main(m, map[*string]string{
		&kjobsBin:  "github.com/kjobs/kjobs/cmd/kjobs",
		&processor: "github.com/kjobs/kjobs/processor",
	})
}

// startStack runs the local stack, on a real redis-server, until the test
// ends, and returns its API's URL. Each option changes the stack's
// configuration first.
func startStack(t *testing.T, options ...func(*stack.Config)) string {
	t.Helper()
	return stacktest.Start(t, processor, options...).API
}

// result is what one run of the CLI printed and its exit code.
type result struct {
	stdout, stderr string
	code           int
}

// user runs the CLI binary as a user would, in an environment of its own:
// env (such as KJOBS_URL=...) and a HOME without a config file, so that the
// tester's own config never leaks in.
type user struct {
	t   *testing.T
	env []string
	// bin is the binary's path: kjobsBin, or a link to it under another
	// name.
	bin string
}

func newUser(t *testing.T, env ...string) user { return user{t: t, env: env, bin: kjobsBin} }

// run runs the CLI with args.
func (u user) run(args ...string) result {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, u.bin, args...)
	cmd.Env = append(cleanEnv(u.t), u.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		u.t.Fatalf("running kjobs %s: %v", strings.Join(args, " "), err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// must runs the CLI with args and fails the test unless it exits with code.
func (u user) must(code int, args ...string) result {
	u.t.Helper()
	r := u.run(args...)
	if r.code != code {
		u.t.Fatalf("kjobs %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	return r
}

// cleanEnv is the test's environment without the CLI's variables, with
// HOME an empty folder.
func cleanEnv(t *testing.T) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "KJOBS_URL", "KJOBS_TOKEN", "KJOBS_CONFIG", "XDG_CONFIG_HOME", "HOME":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+t.TempDir())
}
