// Command startup measures a kjobs service's start: it starts the binary
// given after "--" with the environment it runs in, times process start to
// the first 200 from its readiness URL, reads its resident set size then,
// stops it, and prints each run and the median.
//
//	startup -n 10 -ready http://127.0.0.1:18097/readyz -- bin/api
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	n := flag.Int("n", 10, "runs")
	ready := flag.String("ready", "", "the readiness URL to poll (required)")
	within := flag.Duration("within", 30*time.Second, "how long one start may take")
	flag.Parse()
	if *ready == "" || flag.NArg() == 0 {
		log.Fatal("usage: startup [-n runs] -ready URL -- binary [args]")
	}
	client := &http.Client{Timeout: time.Second}
	var took []time.Duration
	var rss []int
	for range *n {
		d, kib, err := once(client, *ready, *within, flag.Args())
		if err != nil {
			log.Fatal(err)
		}
		took = append(took, d)
		rss = append(rss, kib)
		fmt.Printf("start to ready %v, RSS %d KiB\n", d.Round(time.Millisecond), kib)
	}
	slices.Sort(took)
	slices.Sort(rss)
	fmt.Printf("median of %d: start to ready %v, RSS %d KiB\n", *n, took[len(took)/2].Round(time.Millisecond), rss[len(rss)/2])
}

// once starts the command, waits until ready answers 200, and returns how
// long that took and the process's RSS then.
func once(client *http.Client, ready string, within time.Duration, argv []string) (time.Duration, int, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	}()
	for {
		select {
		case err := <-exited:
			exited <- err
			return 0, 0, fmt.Errorf("%s exited before it was ready: %v", argv[0], err)
		default:
		}
		if resp, err := client.Get(ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				took := time.Since(start)
				kib, err := rssKiB(cmd.Process.Pid)
				return took, kib, err
			}
		}
		if time.Since(start) > within {
			return 0, 0, fmt.Errorf("%s not ready within %v", argv[0], within)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// rssKiB reads VmRSS from /proc, which counts what the process holds in
// memory, not only the Go heap.
func rssKiB(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}
