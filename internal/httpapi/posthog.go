package httpapi

import (
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
// body, or a header (see ingestSDK). posthog-js's ?compression=gzip-js marks a gzip body.
// Success is 200 {"status": 1}, as PostHog answers; its libraries retry a 5xx, 408 or 429
// and drop another 4xx.
func (s *Server) postPostHog(w http.ResponseWriter, r *http.Request) *Error {
	gzipped := r.URL.Query().Get("compression") == "gzip-js"
	return s.ingestSDK(w, r, s.Ingestion.MaxBodyBytes, gzipped, func(body []byte, received time.Time) (sdkRequest, error) {
		req, err := posthog.Decode(body, received)
		return sdkRequest{events: req.Events, key: req.Key}, err
	}, map[string]int{"status": 1})
}

// postPostHogFlags is POST /flags/ (and /decide/): posthog-js asks for its feature flags at
// start. evp has none: the answer is an empty set, so that posthog-js runs with its
// defaults and asks no other host. The body is not read.
func (s *Server) postPostHogFlags(w http.ResponseWriter, r *http.Request) *Error {
	writeJSON(w, http.StatusOK, map[string]any{
		"flags": map[string]any{}, "featureFlags": map[string]any{}, "featureFlagPayloads": map[string]any{},
		"errorsWhileComputingFlags": false,
	})
	return nil
}

// getPostHogConfig is GET /array/{token}/config: posthog-js's remote configuration, which
// turns off what evp does not serve (session recording, surveys, heatmaps, site apps) and
// keeps event capture on.
func (s *Server) getPostHogConfig(w http.ResponseWriter, r *http.Request) *Error {
	writeJSON(w, http.StatusOK, map[string]any{
		"supportedCompression": []string{"gzip", "gzip-js"},
		"hasFeatureFlags":      false, "sessionRecording": false, "surveys": false, "heatmaps": false,
		"capturePerformance": false, "autocaptureExceptions": false, "captureDeadClicks": false,
		"autocapture_opt_out": false, "elementsChainAsString": true, "siteApps": []any{},
	})
	return nil
}
