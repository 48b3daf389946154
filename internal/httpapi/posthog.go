package httpapi

import (
	"maps"
	"net/http"
	"time"

	"github.com/evp-dev/evp/internal/posthog"
)

// posthogPaths are the capture paths PostHog's libraries post to: posthog-node's batch, the
// single-event capture, and posthog-js's e (also under /i/v0/). Exactly these, with their
// trailing slash: a subtree pattern would redirect other paths.
var posthogPaths = []string{"/batch/", "/capture/", "/e/", "/track/", "/i/v0/e/"}

// postPostHog is PostHog's capture API: POST /batch/, /capture/, /e/, /track/ and /i/v0/e/.
// The events become evp events (see package posthog), buffered exactly as POST
// /api/v1/events/batch buffers them. The key is the project key: api_key or token in the
// body, or a header (see ingestSDK). posthog-js's ?compression=gzip-js marks a gzip body;
// its sendBeacon, when a page closes, sends a form (data=, base64 JSON). Success is 200
// {"status": 1}, as PostHog answers; its libraries retry a 5xx, 408 or 429 and drop
// another 4xx.
func (s *Server) postPostHog(w http.ResponseWriter, r *http.Request) *Error {
	compression := r.URL.Query().Get("compression")
	return s.ingestSDK(w, r, sdkCall{max: s.Ingestion.MaxBodyBytes, gzipped: compression == "gzip-js", forms: true,
		ok: map[string]int{"status": 1},
		decode: func(body []byte, form bool, received time.Time) (sdkRequest, error) {
			if form {
				var err error
				if body, err = posthog.FormData(body, compression); err != nil {
					return sdkRequest{}, err
				}
			}
			req, err := posthog.Decode(body, received)
			return sdkRequest{events: req.Events, key: req.Key}, err
		}})
}

// posthogFlags answers posthog-js's and the server libraries' feature-flag calls: evp has
// no flags, so they run with their defaults.
var posthogFlags = map[string]any{
	"flags": map[string]any{}, "featureFlags": map[string]any{}, "featureFlagPayloads": map[string]any{},
	"errorsWhileComputingFlags": false,
}

// posthogConfig is posthog-js's remote configuration: event capture on, and off what evp
// does not serve (session recording, surveys, heatmaps, site apps), so that it asks no other
// host.
var posthogConfig = map[string]any{
	"supportedCompression": []string{"gzip", "gzip-js"},
	"hasFeatureFlags":      false, "sessionRecording": false, "surveys": false, "heatmaps": false,
	"capturePerformance": false, "autocaptureExceptions": false, "captureDeadClicks": false,
	"autocapture_opt_out": false, "elementsChainAsString": true, "siteApps": []any{},
}

// postPostHogFlags is POST /flags/: posthog-js asks for its feature flags at start; the
// answer is posthogFlags. The body is not read.
func (s *Server) postPostHogFlags(w http.ResponseWriter, r *http.Request) *Error {
	writeJSON(w, http.StatusOK, posthogFlags)
	return nil
}

// postPostHogDecide is POST /decide/, what older posthog-js versions (configuration and
// flags in one answer) and server libraries (flags) ask at start: posthogConfig and
// posthogFlags together. The body is not read.
func (s *Server) postPostHogDecide(w http.ResponseWriter, r *http.Request) *Error {
	answer := maps.Clone(posthogConfig)
	maps.Copy(answer, posthogFlags)
	answer["config"] = map[string]any{"enable_collect_everything": true}
	writeJSON(w, http.StatusOK, answer)
	return nil
}

// getPostHogConfig is GET /array/{token}/config: posthog-js's remote configuration,
// posthogConfig.
func (s *Server) getPostHogConfig(w http.ResponseWriter, r *http.Request) *Error {
	writeJSON(w, http.StatusOK, posthogConfig)
	return nil
}
