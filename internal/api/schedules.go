package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/problem"
	"github.com/kjobs/kjobs/internal/schedule"
)

// nextRuns is how many upcoming runs a schedule shows.
const nextRuns = 5

const maxScheduleName = 253

// scheduleRequest is the body of POST /jobs/schedule.
type scheduleRequest struct {
	Name     string   `json:"name"`
	Cron     string   `json:"cron"`
	Timezone string   `json:"timezone"`
	Function string   `json:"function"`
	Args     job.Args `json:"args"`
}

func (s *Server) createSchedule(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	if len(body) == 0 {
		problem.Write(w, r, problem.MalformedJSON, `the body is required: {"cron", "timezone", "function", "args", "name"}`)
		return
	}
	var req scheduleRequest
	if err := job.DecodeJSON(body, &req); err != nil {
		writeDecodeError(w, r, err)
		return
	}
	if req.Cron == "" {
		problem.WriteField(w, r, problem.InvalidCron, "cron", `cron is required, such as "*/5 * * * *"`)
		return
	}
	if err := schedule.Validate(req.Cron, req.Timezone); err != nil {
		writeScheduleError(w, r, err)
		return
	}
	if req.Function == "" {
		req.Function = job.DefaultFunction
	}
	if err := (job.Request{Function: req.Function, Args: req.Args}).Validate(); err != nil {
		writeDecodeError(w, r, err)
		return
	}
	if !s.checkFunction(w, r, req.Function, req.Args) {
		return
	}
	if len(req.Name) > maxScheduleName || !utf8.ValidString(req.Name) {
		problem.WriteField(w, r, problem.InvalidField, "name", fmt.Sprintf("name: at most %d characters of UTF-8", maxScheduleName))
		return
	}
	if req.Args == nil {
		req.Args = job.Args{}
	}
	sc := schedule.Schedule{
		ID: s.cfg.NewID(), Name: req.Name, Cron: req.Cron, Timezone: req.Timezone,
		Function: req.Function, Args: req.Args,
	}
	if sc.Name == "" {
		sc.Name = sc.Function
	}
	created, err := s.cfg.Schedules.Create(r.Context(), sc)
	if err != nil {
		var se *schedule.Error
		if errors.As(err, &se) {
			writeScheduleError(w, r, err)
			return
		}
		s.internalError(w, r, "creating a schedule", err)
		return
	}
	s.withNextRuns(&created)
	w.Header().Set("Location", "/jobs/schedule/"+created.ID)
	writeJSON(w, http.StatusCreated, created)
}

func writeScheduleError(w http.ResponseWriter, r *http.Request, err error) {
	var se *schedule.Error
	if !errors.As(err, &se) {
		problem.Write(w, r, problem.InvalidCron, err.Error())
		return
	}
	kind := problem.InvalidCron
	if se.Field == schedule.FieldTimezone {
		kind = problem.InvalidTimezone
	}
	problem.WriteField(w, r, kind, se.Field, se.Error())
}

func (s *Server) withNextRuns(sc *schedule.Schedule) {
	runs, err := schedule.NextRuns(sc.Cron, sc.Timezone, s.cfg.Now(), nextRuns)
	if err != nil {
		// Only a schedule edited outside kjobs gets here; show it anyway.
		s.cfg.Log.Warn("schedule with an invalid cron", "schedule", sc.ID, "error", err)
		runs = []time.Time{}
	}
	sc.NextRuns = runs
}

// scheduleList is the body of GET /jobs/schedule.
type scheduleList struct {
	Schedules []schedule.Schedule `json:"schedules"`
}

func (s *Server) listSchedules(w http.ResponseWriter, r *http.Request) {
	list, err := s.cfg.Schedules.List(r.Context())
	if err != nil {
		s.internalError(w, r, "listing schedules", err)
		return
	}
	if list == nil {
		list = []schedule.Schedule{}
	}
	each := make([]*schedule.Schedule, len(list))
	for i := range list {
		each[i] = &list[i]
		s.withNextRuns(each[i])
	}
	if !s.withSkipped(w, r, "listing schedules", each...) {
		return
	}
	writeJSON(w, http.StatusOK, scheduleList{Schedules: list})
}

func (s *Server) getSchedule(w http.ResponseWriter, r *http.Request) {
	sc, err := s.cfg.Schedules.Get(r.Context(), r.PathValue("id"))
	if errors.Is(err, schedule.ErrNotFound) {
		problem.Write(w, r, problem.NotFound, "no schedule "+strconv.Quote(r.PathValue("id")))
		return
	}
	if err != nil {
		s.internalError(w, r, "reading a schedule", err)
		return
	}
	s.withNextRuns(&sc)
	if !s.withSkipped(w, r, "reading a schedule", &sc) {
		return
	}
	writeJSON(w, http.StatusOK, sc)
}

// deleteSchedule marks the schedule deleted in the store before it deletes
// the schedule itself: a PingSource ticks on while it is being deleted, and
// the store refuses new jobs of a schedule marked so. The mark stays once
// the schedule is gone or going; a deletion that fails otherwise takes it
// back. A schedule that does not exist is answered 404 before anything is
// written.
func (s *Server) deleteSchedule(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	notFound := func() { problem.Write(w, r, problem.NotFound, "no schedule "+strconv.Quote(id)) }
	if _, err := s.cfg.Schedules.Get(r.Context(), id); errors.Is(err, schedule.ErrNotFound) {
		notFound()
		return
	} else if err != nil {
		s.internalError(w, r, "deleting a schedule", err)
		return
	}
	if err := s.cfg.Store.MarkScheduleDeleted(r.Context(), id); err != nil {
		s.internalError(w, r, "deleting a schedule", err)
		return
	}
	switch err := s.cfg.Schedules.Delete(r.Context(), id); {
	case err == nil:
		if err := s.cfg.Store.ForgetSchedule(r.Context(), id); err != nil {
			// Only a pause mark and a counter are left behind.
			s.cfg.Log.Warn("forgetting the pause state of a deleted schedule", "schedule", id, "error", err)
		}
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, schedule.ErrNotFound):
		notFound() // deleted meanwhile
	default:
		if uerr := s.cfg.Store.UnmarkScheduleDeleted(context.WithoutCancel(r.Context()), id); uerr != nil {
			s.cfg.Log.Error("taking back the deletion mark of a schedule that was not deleted", "schedule", id, "error", uerr)
		}
		s.internalError(w, r, "deleting a schedule", err)
	}
}

// withSkipped fills in Skipped from the store, or answers 500 and returns
// false.
func (s *Server) withSkipped(w http.ResponseWriter, r *http.Request, doing string, scs ...*schedule.Schedule) bool {
	ids := make([]string, len(scs))
	for i, sc := range scs {
		ids[i] = sc.ID
	}
	skipped, err := s.cfg.Store.TicksSkipped(r.Context(), ids...)
	if err != nil {
		s.internalError(w, r, doing, err)
		return false
	}
	for i, sc := range scs {
		sc.Skipped = skipped[i]
	}
	return true
}

// setPaused returns the handler that pauses (or resumes) a schedule. It
// marks the new state in the store before it changes the schedule: a
// PingSource's ticks say the new state only once Knative's adapter has
// caught up, and the dispatcher goes by the mark meanwhile. A change that
// fails takes the mark back to the state the schedule kept. Setting the
// state a schedule has already is answered as a change would be.
func (s *Server) setPaused(paused bool) http.HandlerFunc {
	doing := "resuming a schedule"
	if paused {
		doing = "pausing a schedule"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		notFound := func() { problem.Write(w, r, problem.NotFound, "no schedule "+strconv.Quote(id)) }
		was, err := s.cfg.Schedules.Get(r.Context(), id)
		if errors.Is(err, schedule.ErrNotFound) {
			notFound()
			return
		}
		if err != nil {
			s.internalError(w, r, doing, err)
			return
		}
		if err := s.cfg.Store.MarkSchedulePaused(r.Context(), id, paused); err != nil {
			s.internalError(w, r, doing, err)
			return
		}
		sc, err := s.cfg.Schedules.SetPaused(r.Context(), id, paused)
		if err != nil {
			if uerr := s.cfg.Store.MarkSchedulePaused(context.WithoutCancel(r.Context()), id, was.Paused); uerr != nil {
				s.cfg.Log.Error("taking back the pause mark of a schedule that was not changed", "schedule", id, "error", uerr)
			}
			if errors.Is(err, schedule.ErrNotFound) {
				notFound() // deleted meanwhile
				return
			}
			s.internalError(w, r, doing, err)
			return
		}
		s.withNextRuns(&sc)
		if !s.withSkipped(w, r, doing, &sc) {
			return
		}
		writeJSON(w, http.StatusOK, sc)
	}
}
