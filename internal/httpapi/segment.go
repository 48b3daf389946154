package httpapi

import (
	"net/http"
	"time"

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
	max := int64(segment.MaxBodyBytes)
	if call != "batch" {
		max = segment.MaxMessageBytes
	}
	return s.ingestSDK(w, r, max, false, func(body []byte, received time.Time) (sdkRequest, error) {
		req, err := segment.Decode(body, call, received)
		return sdkRequest{events: req.Events, key: req.WriteKey}, err
	}, map[string]bool{"success": true})
}
