package httpapi

import (
	"errors"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/evp-dev/evp/internal/accounts"
	"github.com/evp-dev/evp/internal/segment"
)

// segmentCalls maps the last element of Segment's paths, /v1/{call}, to the call each
// carries: the server libraries' track ... batch (and import, a batch), and the browser
// library's one-letter paths.
var segmentCalls = func() map[string]string {
	calls := map[string]string{"batch": "batch", "import": "batch", "b": "batch"}
	for _, call := range segment.Calls {
		calls[call] = call
	}
	for short, call := range segment.ShortCalls {
		calls[short] = call
	}
	return calls
}()

// postSegment is POST /v1/{call}, Segment's HTTP Tracking API: the messages become events
// (see package segment) buffered exactly as POST /api/v1/events/batch buffers them. The key
// is the write key: HTTP Basic's user name (the server libraries), writeKey in the body (the
// browser library), or x-api-key. Success is 200 {"success": true}, as Segment answers; the
// SDKs retry a 5xx or 429 and drop a 4xx, so every error about the request itself is a 4xx.
func (s *Server) postSegment(w http.ResponseWriter, r *http.Request) *Error {
	call, ok := segmentCalls[r.PathValue("call")]
	if !ok {
		return errorf(http.StatusNotFound, "NOT_FOUND", "no Segment call %q: use track, identify, page, screen, group, alias or batch", r.PathValue("call"))
	}
	if !s.ready.Load() {
		return errUnavailable("evp is not ready or is shutting down")
	}
	key := requestKey(r)
	if key != "" { // checked before the body is read, when the request says it
		if e := s.ingestKey(r, key); e != nil {
			return e
		}
	}
	if e := checkSDKContentType(r.Header.Get("Content-Type")); e != nil {
		return e
	}
	max := int64(segment.MaxBodyBytes)
	if call != "batch" {
		max = segment.MaxMessageBytes
	}
	hold := bodyHold{b: s.budget}
	defer hold.release()
	buf, e := readBodyBytes(r, min(max, s.Ingestion.MaxBodyBytes), &hold)
	if e != nil {
		return e
	}
	req, err := segment.Decode(buf.Bytes(), call, time.Now().UTC())
	releaseBody(buf)
	if err != nil {
		return decodeError(err)
	}
	if key == "" {
		if req.WriteKey == "" {
			return errorf(http.StatusUnauthorized, "MISSING_API_KEY", "send an evp API key as the write key: HTTP Basic user name, writeKey in the body, or x-api-key")
		}
		if e := s.ingestKey(r, req.WriteKey); e != nil {
			return e
		}
	}
	if _, e := s.accept(r, req.Events); e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
	return nil
}

// requestKey is the key a request carries in its headers: HTTP Basic's user name, else
// x-api-key.
func requestKey(r *http.Request) string {
	if user, _, ok := r.BasicAuth(); ok && user != "" {
		return user
	}
	return r.Header.Get("X-Api-Key")
}

// ingestKey admits key if it may send events.
func (s *Server) ingestKey(r *http.Request, key string) *Error {
	k, err := s.Auth.Keys.Authenticate(r.Context(), key)
	switch {
	case errors.Is(err, accounts.ErrInvalidKey):
		return errorf(http.StatusUnauthorized, "INVALID_API_KEY", "the write key is not an evp API key, or it is revoked or expired")
	case err != nil:
		s.log.Error("api key check failed", "request_id", RequestID(r.Context()), "err", err)
		return errUnavailable("the account store is unavailable; retry shortly")
	case !k.Allows(accounts.PermIngest):
		return errorf(http.StatusForbidden, "FORBIDDEN", "this API key may not send events")
	}
	return nil
}

// checkSDKContentType accepts JSON, and text/plain, which browser libraries send to avoid a
// CORS preflight.
func checkSDKContentType(ct string) *Error {
	if mt, _, err := mime.ParseMediaType(ct); err == nil && strings.EqualFold(mt, "text/plain") {
		return nil
	}
	return checkJSONContentType(ct)
}
