package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"testing"
)

// Main builds the main packages a test package runs as child processes,
// sets each variable of bins to its binary's path, runs the tests and
// removes the binaries. Call it from TestMain; it does not return.
//
// The go command inherits CGO_ENABLED and GOFLAGS from `go test`, so these
// builds share the tests' build cache.
func Main(m *testing.M, bins map[*string]string) {
	os.Exit(runWithBinaries(m, bins))
}

func runWithBinaries(m *testing.M, bins map[*string]string) int {
	dir, err := os.MkdirTemp("", "kjobs-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	for bin, pkg := range bins {
		*bin = filepath.Join(dir, path.Base(pkg))
		if out, err := exec.Command("go", "build", "-o", *bin, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: go build %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	return m.Run()
}
