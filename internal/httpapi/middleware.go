package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/evp-dev/evp/internal/accounts"
)

type stateKey struct{}

// reqState is what the middleware and the guard know about one request. It is kept in the
// request's context under one key, made once by wrap: one allocation and one copy of the
// request, rather than one context value and one request copy for the id and another for
// the caller.
type reqState struct {
	rec    statusRecorder
	id     string
	idHdr  [1]string // the X-Request-Id header's value
	caller caller
	key    accounts.APIKey // caller.key points here when the caller is an API key
}

func stateOf(ctx context.Context) *reqState {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}

// RequestID returns the request's id (from X-Request-Id or generated).
func RequestID(ctx context.Context) string {
	if st := stateOf(ctx); st != nil {
		return st.id
	}
	return ""
}

// requestIDs makes ids unique per process without a random read per request: a random
// process prefix and a counter.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	var b [6]byte
	rand.Read(b[:])
	return &requestIDs{prefix: "req_" + hex.EncodeToString(b[:]) + "-"}
}

func (g *requestIDs) next() string {
	var b [48]byte
	return string(strconv.AppendUint(append(b[:0], g.prefix...), g.n.Add(1), 36))
}

// validClientID accepts a client's request id when it is short and printable ASCII, so that
// it can be echoed and logged safely.
func validClientID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Header values every answer shares. Assigned to the header map directly (the keys are
// canonical); a handler may replace them with Header.Set, never change them in place.
var (
	nosniff = []string{"nosniff"}
	noStore = []string{"no-store"}
)

// isAPI reports whether path is under /api, whose answers are never cached: they carry
// session tokens, new API keys and data that changes.
func isAPI(path string) bool {
	return strings.HasPrefix(path, "/api/") || path == "/api"
}

// clientAddr is the address of r's client for logs: "" when RemoteAddr is not an IP address.
func (s *Server) clientAddr(r *http.Request) string {
	if a := s.clients.Addr(r); a.IsValid() {
		return a.String()
	}
	return ""
}

// wrap adds, outermost first: request id, the security headers (X-Content-Type-Options:
// nosniff on every answer, Cache-Control: no-store under /api), panic recovery, and a log
// line for every error response (successful requests are logged at debug level only, the
// hot path stays quiet).
func (s *Server) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !validClientID(id) {
			id = s.ids.next()
		}
		st := &reqState{rec: statusRecorder{ResponseWriter: w}, id: id, idHdr: [1]string{id}}
		h := w.Header()
		h["X-Request-Id"] = st.idHdr[:] // Header.Set, the key already canonical
		h["X-Content-Type-Options"] = nosniff
		if isAPI(r.URL.Path) {
			h["Cache-Control"] = noStore
		}
		rec := &st.rec
		r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("handler panic", "request_id", id, "method", r.Method, "path", r.URL.Path, "panic", p)
				if rec.status == 0 {
					writeError(rec, errorf(http.StatusInternalServerError, "INTERNAL_ERROR", "internal error (request %s)", id))
				}
			}
			status := rec.status
			took := time.Since(start)
			if s.Serving.Metrics != nil {
				s.Serving.Metrics.ObserveHTTP(r.Pattern, r.Method, status, took)
			}
			level := slog.LevelDebug
			switch {
			case status >= 500:
				level = slog.LevelError
			case status >= 400:
				level = slog.LevelInfo
			}
			if s.log.Enabled(r.Context(), level) {
				// Never the headers: they carry API keys and tokens. The client is the
				// address behind trusted proxies (remote is the direct peer).
				s.log.Log(r.Context(), level, "request", "request_id", id, "method", r.Method, "path", r.URL.Path,
					"status", status, "duration_ms", float64(took.Microseconds())/1000, "remote", r.RemoteAddr,
					"client", s.clientAddr(r))
			}
		}()
		next.ServeHTTP(rec, r)
	})
}
