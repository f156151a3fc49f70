//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startControl starts the control server on a free loopback port and
// returns its URL. It lets tests stop and start the data plane's
// components and map more cluster DNS names to loopback ports:
//
//	GET    /components                  every component: {"name", "state", "pid"}
//	POST   /components/{name}/stop      SIGKILL it (?signal=TERM: SIGTERM, then SIGKILL after 10 s) and wait until it exited
//	POST   /components/{name}/start     start it again, on the same ports, and wait until it serves
//	GET    /routes                      the proxy's routes: {"host": port}
//	PUT    /routes/{host}               body {"port": P}: the proxy sends requests for host to 127.0.0.1:P
//	DELETE /routes/{host}               forget that route
//
// stop and start answer 409 when the component is already stopped or
// running, and 500 with the end of its log when it does not start.
func (c *cluster) startControl() (string, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /components", func(w http.ResponseWriter, r *http.Request) {
		type state struct {
			Name  string `json:"name"`
			State string `json:"state"`
			PID   int    `json:"pid,omitempty"`
		}
		var states []state
		for _, s := range c.services {
			st, pid := s.state()
			states = append(states, state{s.name, st, pid})
		}
		slices.SortFunc(states, func(a, b state) int { return strings.Compare(a.Name, b.Name) })
		writeJSON(w, http.StatusOK, states)
	})
	mux.HandleFunc("POST /components/{name}/stop", func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.service(w, r)
		if !ok {
			return
		}
		sig := syscall.SIGKILL
		switch r.URL.Query().Get("signal") {
		case "", "KILL":
		case "TERM":
			sig = syscall.SIGTERM
		default:
			http.Error(w, "signal must be KILL or TERM", http.StatusBadRequest)
			return
		}
		begin := time.Now()
		if err := c.stopService(s, sig); err != nil {
			http.Error(w, s.name+": "+err.Error(), http.StatusConflict)
			return
		}
		fmt.Fprintf(w, "%s stopped in %.1fs\n", s.name, time.Since(begin).Seconds())
	})
	mux.HandleFunc("POST /components/{name}/start", func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.service(w, r)
		if !ok {
			return
		}
		begin := time.Now()
		if err := c.startService(c.ctx, s); errors.Is(err, errRunning) {
			http.Error(w, s.name+": "+err.Error(), http.StatusConflict)
			return
		} else if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%s ready in %.1fs\n", s.name, time.Since(begin).Seconds())
	})
	mux.HandleFunc("GET /routes", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.proxy.table())
	})
	mux.HandleFunc("PUT /routes/{host}", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Port int }
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<10)).Decode(&body); err != nil || body.Port <= 0 || body.Port > 65535 {
			http.Error(w, `the body must be {"port": <a loopback port>}`, http.StatusBadRequest)
			return
		}
		host := r.PathValue("host")
		if host == ingressHost || host == filterHost {
			http.Error(w, host+" is the data plane's own", http.StatusConflict)
			return
		}
		c.proxy.route(host, body.Port)
		fmt.Fprintf(w, "%s -> 127.0.0.1:%d\n", host, body.Port)
	})
	mux.HandleFunc("DELETE /routes/{host}", func(w http.ResponseWriter, r *http.Request) {
		host := r.PathValue("host")
		if host == ingressHost || host == filterHost {
			http.Error(w, host+" is the data plane's own", http.StatusConflict)
			return
		}
		if !c.proxy.unroute(host) {
			http.Error(w, "no route for "+host, http.StatusNotFound)
		}
	})

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("starting the control server: %v", err)
	}
	c.control = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go c.control.Serve(l)
	return "http://" + l.Addr().String(), nil
}

// service returns the service the request names, or answers 404.
func (c *cluster) service(w http.ResponseWriter, r *http.Request) (*service, bool) {
	s, ok := c.services[r.PathValue("name")]
	if !ok {
		var names []string
		for name := range c.services {
			names = append(names, name)
		}
		slices.Sort(names)
		http.Error(w, fmt.Sprintf("no component %q; there are %s", r.PathValue("name"), strings.Join(names, ", ")), http.StatusNotFound)
	}
	return s, ok
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
