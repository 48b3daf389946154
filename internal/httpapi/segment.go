package httpapi

import (
	"net/http"
	"net/netip"
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
	return s.ingestSDK(w, r, sdkCall{max: max, ok: map[string]bool{"success": true},
		decode: func(body []byte, _ bool, received time.Time) (sdkRequest, error) {
			req, err := segment.Decode(body, call, received)
			return sdkRequest{events: req.Events, key: req.WriteKey}, err
		}})
}

// getSegmentSettings is GET /v1/projects/{writeKey}/settings: what Segment's browser library
// fetches at start from its CDN (cdnURL, or _cdn in the snippet, set to evp's address). It
// sends every event to this evp (apiHost) and turns off what would reach another host
// (metrics, destinations, remote plugins). The same for any write key: the key is checked
// when events arrive.
func (s *Server) getSegmentSettings(w http.ResponseWriter, r *http.Request) *Error {
	proto := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" && s.clients.Trusts(peerAddr(r)) {
		proto = "https"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"integrations": map[string]any{"Segment.io": map[string]any{
			"apiKey": r.PathValue("writeKey"), "apiHost": r.Host + "/v1", "protocol": proto,
			"unbundledIntegrations": []string{}, "addBundledMetadata": false,
		}},
		"plan":                      map[string]any{"track": map[string]any{"__default": map[string]any{"enabled": true}}},
		"edgeFunction":              map[string]any{},
		"analyticsNextEnabled":      true,
		"middlewareSettings":        map[string]any{},
		"enabledMiddleware":         map[string]any{},
		"metrics":                   map[string]any{"sampleRate": 0},
		"legacyVideoPluginsEnabled": false,
		"remotePlugins":             []any{},
	})
	return nil
}

// peerAddr is the address of r's direct peer; invalid for a Unix socket.
func peerAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}
