package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServerEnv names the redis-server binary to run; without it
// redis-server is looked up in PATH.
const RedisServerEnv = "KJOBS_REDIS_SERVER"

// Redis starts a redis-server process of the test's own on a free loopback
// port, without persistence, and returns a client for it. Both are stopped
// when the test ends.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	addr := RedisAddr(t)
	client := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { client.Close() })
	return client
}

// RedisAddr starts a redis-server like Redis does and returns its address.
func RedisAddr(t testing.TB) string {
	t.Helper()
	return RedisServer(t).Addr
}

// RedisProcess is a redis-server process of the test's own. Pause and
// Resume make it unavailable for a while, as a failover or a network
// partition would: clients' connections stay open and their commands time
// out, which is not the same as a server that refuses connections.
type RedisProcess struct {
	// Addr is the host:port it listens on.
	Addr string
	cmd  *exec.Cmd
}

// Pause stops the server with SIGSTOP: it keeps its data and sockets but
// answers nothing until Resume.
func (r *RedisProcess) Pause(t testing.TB) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("testenv: pausing redis-server on %s: %v", r.Addr, err)
	}
}

// Resume continues a paused server with SIGCONT.
func (r *RedisProcess) Resume(t testing.TB) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("testenv: resuming redis-server on %s: %v", r.Addr, err)
	}
}

// RedisServer starts a redis-server like Redis does and returns it; it is
// killed when the test ends, paused or not.
func RedisServer(t testing.TB) *RedisProcess {
	t.Helper()
	bin := os.Getenv(RedisServerEnv)
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			t.Fatalf("testenv: redis-server is not installed; run the tests with `make test`, which installs it, or set %s", RedisServerEnv)
		}
	}
	for try := 0; ; try++ {
		port := FreePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		dir := t.TempDir()
		cmd := exec.Command(bin,
			"--bind", "127.0.0.1", "--port", fmt.Sprint(port),
			"--save", "", "--appendonly", "no", "--dir", dir,
			"--logfile", filepath.Join(dir, "redis.log"))
		if err := cmd.Start(); err != nil {
			t.Fatalf("testenv: starting %s: %v", bin, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if err := waitRedis(addr, exited); err != nil {
			_ = cmd.Process.Kill()
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			if try < 3 {
				continue // another process took the port between FreePort and bind
			}
			t.Fatalf("testenv: redis-server on %s did not start: %v\n%s", addr, err, log)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
		return &RedisProcess{Addr: addr, cmd: cmd}
	}
}

func waitRedis(addr string, exited <-chan error) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("exited: %v", werr)
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
