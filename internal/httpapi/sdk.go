package httpapi

import (
	"errors"
	"mime"
	"net/http"
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

// ingestSDK answers a request of an SDK protocol (Segment, PostHog): the body, at most max
// bytes (gzip when Content-Encoding says so, or when gzipped is set), is decoded by decode
// and its events buffered exactly as POST /api/v1/events/batch buffers them; success is
// answered with ok. The key comes from the headers (HTTP Basic's user name, Authorization:
// Bearer, x-api-key), checked before the body is read, else from the body.
func (s *Server) ingestSDK(w http.ResponseWriter, r *http.Request, max int64, gzipped bool, decode func([]byte, time.Time) (sdkRequest, error), ok any) *Error {
	if !s.ready.Load() {
		return errUnavailable("evp is not ready or is shutting down")
	}
	key := headerKey(r)
	if key != "" {
		if e := s.ingestKey(r, key); e != nil {
			return e
		}
	}
	if e := checkSDKContentType(r.Header.Get("Content-Type")); e != nil {
		return e
	}
	if gzipped && r.Header.Get("Content-Encoding") == "" {
		r.Header.Set("Content-Encoding", "gzip")
	}
	hold := bodyHold{b: s.budget}
	defer hold.release()
	buf, e := readBodyBytes(r, min(max, s.Ingestion.MaxBodyBytes), &hold)
	if e != nil {
		return e
	}
	req, err := decode(buf.Bytes(), time.Now().UTC())
	releaseBody(buf)
	if err != nil {
		return decodeError(err)
	}
	if key == "" {
		if req.key == "" {
			return errorf(http.StatusUnauthorized, "MISSING_API_KEY", "send an evp API key: HTTP Basic user name, Authorization: Bearer, x-api-key, or the protocol's key field in the body")
		}
		if e := s.ingestKey(r, req.key); e != nil {
			return e
		}
	}
	if _, e := s.accept(r, req.events); e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, ok)
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

// ingestKey admits key if it may send events.
func (s *Server) ingestKey(r *http.Request, key string) *Error {
	k, err := s.Auth.Keys.Authenticate(r.Context(), key)
	switch {
	case errors.Is(err, accounts.ErrInvalidKey):
		return errorf(http.StatusUnauthorized, "INVALID_API_KEY", "the key is not an evp API key, or it is revoked or expired")
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
