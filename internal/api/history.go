package api

import (
	"net/http"

	"github.com/kjobs/kjobs/internal/job"
)

// History is the answer of GET /jobs/stats/history.
type History struct {
	// Minutes are the last hour's minutes, oldest first, the current one
	// last.
	Minutes []job.Minute `json:"minutes"`
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	minutes, err := s.cfg.Store.History(r.Context())
	if err != nil {
		s.internalError(w, r, "reading the stats' history", err)
		return
	}
	writeJSON(w, http.StatusOK, History{Minutes: minutes})
}
