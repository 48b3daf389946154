package httpapi

import (
	"bufio"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/evp-dev/evp/internal/accounts"
	"github.com/evp-dev/evp/internal/event"
)

// sdkRequest is what an SDK protocol makes of a request body: the events, and the key the
// body carries (empty when it carries none).
type sdkRequest struct {
	events []event.Event
	key    string
}

// sdkCall is one of an SDK protocol's ingestion routes.
type sdkCall struct {
	max     int64 // body bytes, after decompression
	gzipped bool  // the body is gzip, whatever Content-Encoding says
	forms   bool  // the body may be a form (application/x-www-form-urlencoded)
	// decode reads the body (form: whether it is a form) into events, received now.
	decode func(body []byte, form bool, received time.Time) (sdkRequest, error)
	ok     any // the answer to success
}

// ingestSDK answers a request of an SDK protocol (Segment, PostHog): the body, at most
// c.max bytes after decompression (gzip when Content-Encoding says so, when c.gzipped is
// set, or when it starts as gzip does, as posthog-js sends it), is decoded by c.decode and
// its events buffered exactly as POST /api/v1/events/batch buffers them; success is
// answered with c.ok. The key comes from the headers (HTTP Basic's user name,
// Authorization: Bearer, x-api-key), checked before the body is read, else from the body.
func (s *Server) ingestSDK(w http.ResponseWriter, r *http.Request, c sdkCall) *Error {
	if !s.ready.Load() {
		return errUnavailable("evp is not ready or is shutting down")
	}
	key := headerKey(r)
	if key != "" {
		if _, e := s.apiKey(r, key, accounts.PermIngest); e != nil {
			return e
		}
	}
	form, e := checkSDKContentType(r.Header.Get("Content-Type"), c.forms)
	if e != nil {
		return e
	}
	gzipped := r.Header.Get("Content-Encoding") == "" && (c.gzipped || sniffGzip(r))
	hold := bodyHold{b: s.budget}
	defer hold.release()
	buf, e := readBodyBytes(r, min(c.max, s.Ingestion.MaxBodyBytes), &hold, gzipped)
	if e != nil {
		return e
	}
	req, err := c.decode(buf.Bytes(), form, time.Now().UTC())
	releaseBody(buf)
	if err != nil {
		return decodeError(err)
	}
	if key == "" {
		if req.key == "" {
			return errorf(http.StatusUnauthorized, "MISSING_API_KEY", "send an evp API key: HTTP Basic user name, Authorization: Bearer, x-api-key, or the protocol's key field in the body")
		}
		if _, e := s.apiKey(r, req.key, accounts.PermIngest); e != nil {
			return e
		}
	}
	if _, e := s.accept(r, req.events); e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, c.ok)
	return nil
}

// headerKey is the key a request carries in its headers: HTTP Basic's user name (Segment's
// server libraries), Authorization: Bearer, else x-api-key.
func headerKey(r *http.Request) string {
	if user, _, ok := r.BasicAuth(); ok && user != "" {
		return user
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && strings.TrimSpace(tok) != "" {
		return strings.TrimSpace(tok)
	}
	return r.Header.Get("X-Api-Key")
}

// checkSDKContentType accepts JSON, text/plain, which browser libraries send to avoid a
// CORS preflight, and, when forms is set, a form, reporting it.
func checkSDKContentType(ct string, forms bool) (form bool, e *Error) {
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		switch {
		case strings.EqualFold(mt, "text/plain"):
			return false, nil
		case forms && strings.EqualFold(mt, "application/x-www-form-urlencoded"):
			return true, nil
		}
	}
	return false, checkJSONContentType(ct)
}

// isIngestPath reports whether path is a route that web pages call to send events, or
// that a browser library calls at start: evp's own ingestion routes and the SDK
// protocols' (see ingestCORS).
func isIngestPath(path string) bool {
	switch {
	case path == "/api/v1/events", path == "/api/v1/events/batch", path == "/flags/", path == "/decide/",
		strings.HasPrefix(path, "/v1/"), strings.HasPrefix(path, "/array/"):
		return true
	}
	return slices.Contains(posthogPaths, path)
}

// ingestCORS lets web pages on any origin send events: on the ingestion routes it answers
// CORS preflights itself and allows any origin, without credentials (keys travel in
// headers or bodies, never in cookies, and an ingest-only key may do nothing else). Other
// routes are left to next, with the CORS policy of EVP_CORS_ORIGINS.
func ingestCORS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") == "" || !isIngestPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST")
			h.Set("Access-Control-Allow-Headers", "Content-Type, Content-Encoding, Authorization, X-Api-Key, X-Request-Id")
			h.Set("Access-Control-Max-Age", "86400")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", "Retry-After, X-Request-Id")
		next.ServeHTTP(w, r)
	})
}

// sniffGzip reports whether r's body starts with gzip's magic bytes, which no JSON body
// does, keeping those bytes for the reader.
func sniffGzip(r *http.Request) bool {
	br := bufio.NewReaderSize(r.Body, 16)
	head, _ := br.Peek(2)
	r.Body = struct {
		io.Reader
		io.Closer
	}{br, r.Body}
	return len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b
}
