package api

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kjobs/kjobs/internal/problem"
)

// Tokens are the bearer tokens the API accepts, read from a file with one
// token per line (a mounted Secret). The file is read again when it
// changes, at most every reloadEvery, so a rotated Secret takes effect
// without a restart.
type Tokens struct {
	path string

	mu      sync.Mutex
	checked time.Time
	modTime time.Time
	hashes  [][sha256.Size]byte
}

const reloadEvery = 10 * time.Second

// LoadTokens reads the token file at path. A file without a token is an
// error: an API that no token can call is a misconfiguration.
func LoadTokens(path string) (*Tokens, error) {
	t := &Tokens{path: path}
	if err := t.reload(time.Now()); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Tokens) reload(now time.Time) error {
	fi, err := os.Stat(t.path)
	if err != nil {
		return fmt.Errorf("api.LoadTokens: %w", err)
	}
	t.checked = now
	if fi.ModTime().Equal(t.modTime) && t.hashes != nil {
		return nil
	}
	data, err := os.ReadFile(t.path)
	if err != nil {
		return fmt.Errorf("api.LoadTokens: %w", err)
	}
	var hashes [][sha256.Size]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if tok := strings.TrimSpace(sc.Text()); tok != "" {
			hashes = append(hashes, sha256.Sum256([]byte(tok)))
		}
	}
	if len(hashes) == 0 {
		return fmt.Errorf("api.LoadTokens: %s holds no token", t.path)
	}
	t.hashes, t.modTime = hashes, fi.ModTime()
	return nil
}

// Valid reports whether token is one of the accepted tokens. Tokens are
// compared as SHA-256 hashes in constant time, and every token is compared,
// so the time taken tells nothing about which, or how much, matched.
func (t *Tokens) Valid(token string) bool {
	t.mu.Lock()
	if now := time.Now(); now.Sub(t.checked) >= reloadEvery {
		// A failed reload keeps the tokens already loaded: a Secret being
		// rewritten must not lock every client out.
		_ = t.reload(now)
	}
	hashes := t.hashes
	t.mu.Unlock()

	got := sha256.Sum256([]byte(token))
	ok := 0
	for _, h := range hashes {
		ok |= subtle.ConstantTimeCompare(got[:], h[:])
	}
	return ok == 1
}

func (s *Server) authenticated(next http.HandlerFunc) http.HandlerFunc {
	if s.cfg.Auth == nil {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) {
		scheme, token, found := strings.Cut(r.Header.Get("Authorization"), " ")
		if !found || !strings.EqualFold(scheme, "Bearer") || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kjobs"`)
			problem.Write(w, r, problem.Unauthorized, "send the header Authorization: Bearer <token>")
			return
		}
		if !s.cfg.Auth.Valid(strings.TrimSpace(token)) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kjobs", error="invalid_token"`)
			problem.Write(w, r, problem.Unauthorized, "the bearer token is not valid")
			return
		}
		next(w, r)
	}
}
