package api

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/kjobs/kjobs/internal/binding"
	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/problem"
)

func (s *Server) createBinding(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	b, err := binding.Decode(body)
	if err != nil {
		writeBindingError(w, r, err)
		return
	}
	if !s.checkBindingFunction(w, r, b) {
		return
	}
	created, err := s.cfg.Bindings.Create(r.Context(), b)
	if errors.Is(err, binding.ErrExists) {
		problem.WriteField(w, r, problem.AlreadyExists, "name", "a binding named "+strconv.Quote(b.Name)+" exists: delete it first, or choose another name")
		return
	}
	if err != nil {
		s.internalError(w, r, "creating a binding", err)
		return
	}
	w.Header().Set("Location", "/jobs/bindings/"+created.Name)
	writeJSON(w, http.StatusCreated, created)
}

// writeBindingError answers a body that binding.Decode refused: a fault in
// the filters is an invalid-filter problem, any other as for every body.
func writeBindingError(w http.ResponseWriter, r *http.Request, err error) {
	var fe *job.FieldError
	if errors.As(err, &fe) && strings.HasPrefix(fe.Field, "filter") {
		problem.WriteField(w, r, problem.InvalidFilter, fe.Field, fe.Error())
		return
	}
	writeDecodeError(w, r, err)
}

// checkBindingFunction answers a binding whose function is not declared,
// or whose args its function's schema refuses, as POST /jobs would answer a
// job of it; it returns false when it has answered.
func (s *Server) checkBindingFunction(w http.ResponseWriter, r *http.Request, b binding.Binding) bool {
	var args job.Args
	if len(b.Args) > 0 {
		if err := job.DecodeJSON(b.Args, &args); err != nil {
			problem.WriteField(w, r, problem.InvalidField, "args", "args: want a JSON object")
			return false
		}
	}
	return s.checkFunction(w, r, b.Function, args)
}

// bindingList is the body of GET /jobs/bindings.
type bindingList struct {
	Bindings []binding.Binding `json:"bindings"`
}

func (s *Server) listBindings(w http.ResponseWriter, r *http.Request) {
	list, err := s.cfg.Bindings.List(r.Context())
	if err != nil {
		s.internalError(w, r, "listing bindings", err)
		return
	}
	if list == nil {
		list = []binding.Binding{}
	}
	writeJSON(w, http.StatusOK, bindingList{Bindings: list})
}

func (s *Server) getBinding(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	b, err := s.cfg.Bindings.Get(r.Context(), name)
	if errors.Is(err, binding.ErrNotFound) {
		problem.Write(w, r, problem.NotFound, "no binding "+strconv.Quote(name))
		return
	}
	if err != nil {
		s.internalError(w, r, "reading a binding", err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) deleteBinding(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	err := s.cfg.Bindings.Delete(r.Context(), name)
	if errors.Is(err, binding.ErrNotFound) {
		problem.Write(w, r, problem.NotFound, "no binding "+strconv.Quote(name))
		return
	}
	if err != nil {
		s.internalError(w, r, "deleting a binding", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
