package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// ChromiumEnv names the chromium binary the dashboard's tests drive; without
// it chromium is looked up in PATH. hack/chromium.sh installs Debian's.
const ChromiumEnv = "KJOBS_CHROMIUM"

// Chromium returns the chromium binary to drive headless. A missing one
// fails the test, as a missing redis-server does.
func Chromium(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv(ChromiumEnv); bin != "" {
		return bin
	}
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("testenv: chromium is not installed; run the tests with `make test`, which installs it (hack/chromium.sh), or set %s", ChromiumEnv)
	}
	return bin
}
