package api

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
)

// openAPI is the API's OpenAPI 3.1 document, written by hand. The tests
// validate it and check every request and response of the API's tests
// against it, and that it has an operation for each route and no other.
//
//go:embed openapi.json
var openAPI []byte

// openAPIETag names this build's document, so that a client or proxy can
// ask again with If-None-Match for the cost of a header.
var openAPIETag = func() string {
	sum := sha256.Sum256(openAPI)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}()

// serveOpenAPI answers with the document. It holds no job data, so it is
// served without a token, like the routes it describes as public.
func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("ETag", openAPIETag)
	w.Header().Set("Cache-Control", "public, max-age=300")
	if r.Header.Get("If-None-Match") == openAPIETag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPI)
}
