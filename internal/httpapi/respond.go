package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// Error is an API error: the status, the stable code clients rely on, a human message and
// optional details (for validation errors, the failing fields).
type Error struct {
	Status     int
	Code       string
	Message    string
	Details    any
	RetryAfter int // seconds; sets Retry-After when above zero
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

type envelope struct {
	Success bool       `json:"success"`
	Data    any        `json:"data,omitempty"`
	Error   *errorBody `json:"error,omitempty"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details any    `json:"details,omitempty"`
}

// writeData answers {"success":true,"data":data}.
func writeData(w http.ResponseWriter, status int, data any) {
	writeJSON(w, status, envelope{Success: true, Data: data})
}

// writeError answers with the error envelope.
func writeError(w http.ResponseWriter, e *Error) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	writeJSON(w, e.Status, envelope{Error: &errorBody{Code: e.Code, Message: e.Message, Details: e.Details}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"success":false,"error":{"code":"INTERNAL_ERROR","message":"response encoding failed"}}`)
	}
	writeBody(w, status, append(b, '\n'))
}

// writeBody answers with the JSON document b, which ends in a newline.
func writeBody(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	// As Header.Set would, without canonicalizing the keys again or allocating the values
	// of every answer: net/http copies header values, never changes them in place.
	h["Content-Type"] = jsonContentType
	if len(b) < len(contentLengths) {
		h["Content-Length"] = contentLengths[len(b)]
	} else {
		h["Content-Length"] = []string{strconv.Itoa(len(b))}
	}
	w.WriteHeader(status)
	w.Write(b)
}

var (
	jsonContentType = []string{"application/json; charset=utf-8"}
	// contentLengths[n] is the Content-Length header value for n bytes.
	contentLengths [1024][]string
)

func init() {
	for n := range contentLengths {
		contentLengths[n] = []string{strconv.Itoa(n)}
	}
}
