package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/kjobs/kjobs/internal/job"
	"github.com/kjobs/kjobs/internal/problem"
)

// readBody reads a request body of at most MaxBody bytes that, when not
// empty, is declared JSON. On failure it has answered r and returns false.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			problem.Write(w, r, problem.BodyTooLarge, fmt.Sprintf("the body is larger than %d bytes", MaxBody))
			return nil, false
		}
		problem.Write(w, r, problem.MalformedJSON, "the body could not be read: "+err.Error())
		return nil, false
	}
	if len(body) == 0 {
		return body, true
	}
	if ct := r.Header.Get("Content-Type"); !isJSON(ct) {
		if ct == "" {
			ct = "none"
		}
		problem.Write(w, r, problem.UnsupportedMediaType, "the body is JSON: send the header Content-Type: application/json (got "+ct+")")
		return nil, false
	}
	return body, true
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// writeDecodeError answers a body that job.DecodeJSON or a Validate refused.
func writeDecodeError(w http.ResponseWriter, r *http.Request, err error) {
	var fe *job.FieldError
	if !errors.As(err, &fe) {
		problem.Write(w, r, problem.MalformedJSON, err.Error())
		return
	}
	if fe.Field == "body" {
		problem.Write(w, r, problem.MalformedJSON, fe.Detail)
		return
	}
	problem.WriteField(w, r, problem.InvalidField, fe.Field, fe.Error())
}
