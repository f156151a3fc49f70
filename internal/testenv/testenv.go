// Package testenv gives tests the real parts they run against: a
// redis-server process and the control plane that `make test` starts. A
// missing part fails the test with what to run; it is never skipped, so a
// CI run cannot pass without having tested against it.
package testenv

import (
	"net"
	"strconv"
	"testing"
)

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: finding a free port: %v", err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	p, _ := strconv.Atoi(port)
	return p
}
