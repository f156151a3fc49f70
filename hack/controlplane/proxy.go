//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// proxy is the forward proxy the data-plane processes get as HTTP_PROXY:
// Knative addresses everything by cluster DNS names, which resolve nowhere
// here, and its HTTP clients honour HTTP_PROXY. It sends a request for a
// known host to 127.0.0.1 on that host's port, keeping the Host header
// (the channel dispatcher routes by it), and answers 502 for any other.
type proxy struct {
	url string // http://127.0.0.1:P
	srv *http.Server

	mu     sync.RWMutex
	routes map[string]int // host, without a port → loopback port
	// channelPort is where <name>-kn-channel.<namespace>.svc.cluster.local,
	// an InMemoryChannel's address, goes: the channel dispatcher.
	channelPort int

	logMu sync.Mutex
	log   io.WriteCloser
}

// channelSuffix ends an InMemoryChannel's host's first label.
const channelSuffix = "-kn-channel"

type targetKey struct{}

// startProxy listens on a free loopback port and serves until close.
func startProxy(logPath string, channelPort int) (*proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	log, err := os.Create(logPath)
	if err != nil {
		l.Close()
		return nil, err
	}
	p := &proxy{
		url:         "http://" + l.Addr().String(),
		routes:      map[string]int{},
		channelPort: channelPort,
		log:         log,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = "http"
			r.Out.URL.Host = r.In.Context().Value(targetKey{}).(string)
			r.Out.Host = r.In.Host
		},
		// Never through a proxy of the environment: that could be this one.
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 100,
			IdleConnTimeout:     90 * time.Second,
		},
		ModifyResponse: func(resp *http.Response) error {
			p.logf("%s %s%s -> %s: %d", resp.Request.Method, resp.Request.Host, resp.Request.URL.Path, resp.Request.URL.Host, resp.StatusCode)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.logf("%s %s%s -> %s: %v", r.Method, r.Host, r.URL.Path, r.URL.Host, err)
			http.Error(w, "controlplane proxy: "+err.Error(), http.StatusBadGateway)
		},
	}
	p.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodConnect {
				http.Error(w, "controlplane proxy: CONNECT is not supported", http.StatusMethodNotAllowed)
				return
			}
			port, ok := p.lookup(r.Host)
			if !ok {
				p.logf("%s %s%s: no route", r.Method, r.Host, r.URL.Path)
				http.Error(w, fmt.Sprintf("controlplane proxy: no route for host %q (register one through the control server's PUT /routes/{host})", r.Host), http.StatusBadGateway)
				return
			}
			target := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, target)))
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go p.srv.Serve(l)
	return p, nil
}

// lookup returns the loopback port for host, with or without a port.
func (p *proxy) lookup(host string) (int, bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	p.mu.RLock()
	defer p.mu.RUnlock()
	if port, ok := p.routes[host]; ok {
		return port, true
	}
	if first, rest, ok := strings.Cut(host, "."); ok && strings.HasSuffix(first, channelSuffix) &&
		strings.HasSuffix(rest, ".svc.cluster.local") && strings.Count(rest, ".") == 3 {
		return p.channelPort, true
	}
	return 0, false
}

// route sends requests for host to 127.0.0.1:port from now on.
func (p *proxy) route(host string, port int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.routes[strings.ToLower(host)] = port
}

// unroute forgets host's route and tells whether there was one.
func (p *proxy) unroute(host string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.routes[strings.ToLower(host)]
	delete(p.routes, strings.ToLower(host))
	return ok
}

// table returns the routes, with the InMemoryChannels' pattern.
func (p *proxy) table() map[string]int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	t := map[string]int{"*" + channelSuffix + ".*.svc.cluster.local": p.channelPort}
	for host, port := range p.routes {
		t[host] = port
	}
	return t
}

func (p *proxy) logf(format string, args ...any) {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	fmt.Fprintf(p.log, time.Now().Format(time.StampMilli)+" "+format+"\n", args...)
}

func (p *proxy) close() {
	p.srv.Close()
	p.logMu.Lock()
	defer p.logMu.Unlock()
	p.log.Close()
}
