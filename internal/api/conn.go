package api

import (
	"errors"
	"net"
	"syscall"
)

// isConnError reports whether err is a network failure talking to a backing
// service, as opposed to a bug.
func isConnError(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}
