package ui

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"time"
)

// CookieName is the cookie that keeps a logged-in user's token.
//
// It holds the token itself (base64url-encoded, since a token may hold
// bytes a cookie may not), not a session value derived from it: each page
// calls the API with the user's bearer token, so the cookie must give the
// token back, and a session of our own would need state or a secret shared
// by every replica of the API, which an install does not have. What a
// token may do it may do anyway; HttpOnly keeps it from scripts, Path=/ui
// and SameSite=Strict from every request but the dashboard's own, and a
// token taken out of the Secret ends its sessions within seconds, as
// api.Tokens reads the Secret again.
const CookieName = "kjobs_token"

// sessionAge bounds a login.
const sessionAge = 12 * time.Hour

// csrfField is the form field that carries the CSRF token.
const csrfField = "csrf"

// maxForm caps a form's body: the largest is the login's token.
const maxForm = 16 << 10

// handler is a page or action of a user who may see it; token is what the
// API is called with: the user's, or "" when there is no login.
type handler func(w http.ResponseWriter, r *http.Request, token string)

// session returns the token of r's cookie when it is valid, and whether
// the user may see the dashboard: always when there is no login.
func (s *Server) session(r *http.Request) (string, bool) {
	if s.cfg.Auth == nil {
		return "", true
	}
	c, err := r.Cookie(CookieName)
	if err != nil {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(raw) == 0 || !s.cfg.Auth.Valid(string(raw)) {
		return "", false
	}
	return string(raw), true
}

// page serves h to a logged-in user, and sends anyone else to the login.
func (s *Server) page(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := s.session(r)
		if !ok {
			http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
			return
		}
		h(w, r, token)
	}
}

// action serves h, which changes state, to a logged-in user whose request
// comes from a dashboard page: from this origin, and with the CSRF token
// that page was given. Either check alone would do in a browser that sends
// Origin; both hold in old browsers and behind proxies that drop it.
func (s *Server) action(h handler) http.HandlerFunc {
	return s.page(func(w http.ResponseWriter, r *http.Request, token string) {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if !sameOrigin(r) {
			s.forbidden(w, r, token, "this form was not sent from a page of this dashboard")
			return
		}
		if err := r.ParseForm(); err != nil || !hmac.Equal([]byte(r.PostForm.Get(csrfField)), []byte(s.csrf(token))) {
			s.forbidden(w, r, token, "the form's CSRF token is missing or wrong: reload the page and try again")
			return
		}
		h(w, r, token)
	})
}

// csrf returns the CSRF token of a session: an HMAC of the session's
// token, so that it needs no state, is the same on every replica, and
// cannot be made without the token.
func (s *Server) csrf(token string) string {
	key := []byte(token)
	if s.cfg.Auth == nil {
		key = s.localKey
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("kjobs dashboard csrf"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// sameOrigin reports whether r's Origin, or else its Referer, is this
// host. A browser sends one of them with every POST of a form (the
// Referrer-Policy keeps Referer for this origin); a request with neither
// is not a form of ours. Only the host is compared: behind a proxy that
// ends TLS the scheme the browser saw is not known for sure.
func sameOrigin(r *http.Request) bool {
	from := r.Header.Get("Origin")
	if from == "" {
		from = r.Header.Get("Referer")
	}
	u, err := url.Parse(from)
	return err == nil && u.Host != "" && u.Host == r.Host
}

// secure reports whether the browser reached us over TLS: directly, or
// through an ingress that says so, as Knative's does with
// X-Forwarded-Proto. The header is trusted because it can only make the
// cookie stricter: a client that forges it loses its own login over plain
// HTTP, and nothing else.
func secure(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"
}

func (s *Server) setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: value, Path: "/ui", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r),
	})
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.session(r); ok {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "login", "", loginPage{})
}

// loginPage is the login form's data.
type loginPage struct {
	// Error says why the last try failed.
	Error string
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Auth == nil {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	// The Origin check stops another site from logging a browser in with
	// a token of the attacker's (login CSRF).
	if !sameOrigin(r) {
		s.render(w, r, http.StatusForbidden, "login", "", loginPage{Error: "This form was not sent from this dashboard."})
		return
	}
	if err := r.ParseForm(); err != nil {
		s.render(w, r, http.StatusBadRequest, "login", "", loginPage{Error: "The form could not be read; try again."})
		return
	}
	token := r.PostForm.Get("token")
	if token == "" || !s.cfg.Auth.Valid(token) {
		s.render(w, r, http.StatusUnauthorized, "login", "", loginPage{Error: "That token is not valid."})
		return
	}
	s.setCookie(w, r, base64.RawURLEncoding.EncodeToString([]byte(token)), int(sessionAge/time.Second))
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, _ string) {
	s.setCookie(w, r, "", -1)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}
