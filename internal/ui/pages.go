package ui

import (
	"bytes"
	"encoding/json"
	"errors"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/kjobs/kjobs/internal/api"
	"github.com/kjobs/kjobs/internal/binding"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/schedule"
)

// pages are the parsed templates, by page name: each is the layout with
// the page's own content.
type pages map[string]*template.Template

var pageNames = []string{"login", "error", "overview", "jobs", "job", "schedules", "bindings"}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	},
	"ended": func(t *time.Time) string {
		if t == nil {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	},
	"took": func(start time.Time, end *time.Time) string {
		if end == nil || start.IsZero() {
			return ""
		}
		return end.Sub(start).Round(time.Millisecond).String()
	},
	"json": func(v any) string {
		b, err := json.Marshal(v)
		if err != nil || string(b) == "null" {
			return ""
		}
		return string(b)
	},
}

func parsePages() pages {
	p := pages{}
	for _, name := range pageNames {
		p[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(assets,
			"templates/layout.html", "templates/"+name+".html"))
	}
	return p
}

// layout is what every page's template gets.
type layout struct {
	// Page names the page, for the navigation.
	Page string
	// Nav shows the navigation: false on the login page.
	Nav bool
	// Logout shows the logout button: there is a login.
	Logout bool
	// CSRF goes in every form that changes state.
	CSRF string
	// Data is the page's own.
	Data any
}

// render answers with page name, filled with data.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name, token string, data any) {
	l := layout{Page: name, Nav: name != "login", Logout: s.cfg.Auth != nil, CSRF: s.csrf(token), Data: data}
	var buf bytes.Buffer
	if err := s.pages[name].Execute(&buf, l); err != nil {
		s.cfg.Log.Error("ui: rendering "+name, "error", err)
		http.Error(w, "the dashboard could not render this page; the error is logged", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage is the error page's data.
type errorPage struct {
	Status int
	Detail string
}

// fail answers with what went wrong: the API's status and problem detail,
// or 500 for an answer the dashboard could not read, whose error is
// logged rather than shown.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, token string, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		s.cfg.Log.Error("ui: "+r.Method+" "+r.URL.Path, "error", err)
		ae = &apiError{Status: http.StatusInternalServerError, Detail: "the error is logged"}
	}
	if ae.Status == http.StatusUnauthorized {
		// The token was taken out of the Secret since the page began.
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
		return
	}
	s.render(w, r, ae.Status, "error", token, errorPage{Status: ae.Status, Detail: ae.Detail})
}

func (s *Server) forbidden(w http.ResponseWriter, r *http.Request, token, detail string) {
	s.render(w, r, http.StatusForbidden, "error", token, errorPage{Status: http.StatusForbidden, Detail: detail})
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request, token string) {
	s.render(w, r, http.StatusNotFound, "error", token, errorPage{Status: http.StatusNotFound, Detail: "no page " + r.URL.Path})
}

// overviewPage is the overview's data.
type overviewPage struct {
	Stats job.Stats
	Chart chart
	// Succeeded and Failed are the hour's totals.
	Succeeded, Failed int64
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request, token string) {
	var p overviewPage
	if err := s.get(r.Context(), token, "/jobs/stats", &p.Stats); err != nil {
		s.fail(w, r, token, err)
		return
	}
	var h api.History
	if err := s.get(r.Context(), token, "/jobs/stats/history", &h); err != nil {
		s.fail(w, r, token, err)
		return
	}
	for _, m := range h.Minutes {
		p.Succeeded += m.Succeeded
		p.Failed += m.Failed
	}
	p.Chart = newChart(h.Minutes)
	s.render(w, r, http.StatusOK, "overview", token, p)
}

// pageSize is how many jobs the list shows at once, unless its query's
// limit says otherwise.
const pageSize = 50

// jobsPage is the job list's data.
type jobsPage struct {
	Jobs []job.Job
	// Status is the filter, "" for every job.
	Status string
	// Binding shows the jobs of one binding's events alone, when not "".
	Binding  string
	Statuses []job.Status
	// Paged is true past the first page, which First links; Next links
	// the following one.
	Paged       bool
	First, Next string
}

func (s *Server) jobs(w http.ResponseWriter, r *http.Request, token string) {
	p := jobsPage{Status: r.URL.Query().Get("status"), Binding: r.URL.Query().Get("binding"), Statuses: job.Statuses}
	// filter is the query of the list's every page: the API checks it.
	filter := url.Values{}
	if p.Status != "" {
		filter.Set("status", p.Status)
	}
	if p.Binding != "" {
		filter.Set("binding", p.Binding)
	}
	if l := r.URL.Query().Get("limit"); l != "" {
		filter.Set("limit", l)
	}
	p.First = "/ui/jobs?" + filter.Encode()
	q := url.Values{"limit": {strconv.Itoa(pageSize)}}
	maps.Copy(q, filter)
	if c := r.URL.Query().Get("cursor"); c != "" {
		q.Set("cursor", c)
		p.Paged = true
	}
	var page struct {
		Jobs []job.Job `json:"jobs"`
		Next string    `json:"next"`
	}
	if err := s.get(r.Context(), token, "/jobs?"+q.Encode(), &page); err != nil {
		s.fail(w, r, token, err)
		return
	}
	p.Jobs = page.Jobs
	if page.Next != "" {
		next := url.Values{"cursor": {page.Next}}
		maps.Copy(next, filter)
		p.Next = "/ui/jobs?" + next.Encode()
	}
	s.render(w, r, http.StatusOK, "jobs", token, p)
}

// maxLog is how much of an attempt's log the job page shows: its end,
// where the error is.
const maxLog = 256 << 10

// jobPage is a job's page's data.
type jobPage struct {
	Job      job.Job
	Attempts []attemptView
}

// attemptView is one attempt and its log, or why there is none to show.
type attemptView struct {
	job.Attempt
	Log string
	// Truncated is true when only the end of the log is shown.
	Truncated bool
	// NoLog is the API's reason for not giving the log.
	NoLog string
}

func (s *Server) job(w http.ResponseWriter, r *http.Request, token string) {
	id := r.PathValue("id")
	var p jobPage
	if err := s.get(r.Context(), token, "/jobs/"+url.PathEscape(id), &p.Job); err != nil {
		s.fail(w, r, token, err)
		return
	}
	for _, a := range p.Job.Attempts {
		v := attemptView{Attempt: a}
		log, err := s.call(r.Context(), token, http.MethodGet, "/jobs/"+url.PathEscape(id)+"/logs?attempt="+strconv.Itoa(a.Attempt))
		var ae *apiError
		switch {
		case errors.As(err, &ae):
			v.NoLog = ae.Detail
		case err != nil:
			s.fail(w, r, token, err)
			return
		case len(log) > maxLog:
			v.Log, v.Truncated = string(log[len(log)-maxLog:]), true
		default:
			v.Log = string(log)
		}
		p.Attempts = append(p.Attempts, v)
	}
	s.render(w, r, http.StatusOK, "job", token, p)
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request, token string) {
	id := r.PathValue("id")
	if _, err := s.call(r.Context(), token, http.MethodPost, "/jobs/"+url.PathEscape(id)+"/cancel"); err != nil {
		s.fail(w, r, token, err)
		return
	}
	http.Redirect(w, r, "/ui/jobs/"+url.PathEscape(id), http.StatusSeeOther)
}

func (s *Server) schedules(w http.ResponseWriter, r *http.Request, token string) {
	var list struct {
		Schedules []schedule.Schedule `json:"schedules"`
	}
	if err := s.get(r.Context(), token, "/jobs/schedule", &list); err != nil {
		s.fail(w, r, token, err)
		return
	}
	s.render(w, r, http.StatusOK, "schedules", token, list.Schedules)
}

// scheduleAction pauses, resumes or deletes a schedule, then shows the
// schedules again.
func (s *Server) scheduleAction(w http.ResponseWriter, r *http.Request, token string) {
	target := "/jobs/schedule/" + url.PathEscape(r.PathValue("id"))
	var err error
	switch verb := r.PathValue("verb"); verb {
	case "pause", "resume":
		_, err = s.call(r.Context(), token, http.MethodPost, target+"/"+verb)
	case "delete":
		_, err = s.call(r.Context(), token, http.MethodDelete, target)
	default:
		s.notFound(w, r, token)
		return
	}
	if err != nil {
		s.fail(w, r, token, err)
		return
	}
	http.Redirect(w, r, "/ui/schedules", http.StatusSeeOther)
}

func (s *Server) bindings(w http.ResponseWriter, r *http.Request, token string) {
	var list struct {
		Bindings []binding.Binding `json:"bindings"`
	}
	if err := s.get(r.Context(), token, "/jobs/bindings", &list); err != nil {
		s.fail(w, r, token, err)
		return
	}
	s.render(w, r, http.StatusOK, "bindings", token, list.Bindings)
}
