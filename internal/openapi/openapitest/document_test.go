package openapitest

import (
	"github.com/evp-dev/evp/internal/openapi"

	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

func mustDoc(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := loadDocument()
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestDocumentIsValidOpenAPI31(t *testing.T) {
	doc := mustDoc(t)
	if !doc.IsOpenAPI31OrLater() || doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	if doc.Info.Title != "evp" || doc.Info.Description == "" || doc.Info.Version == "" {
		t.Fatalf("info = %+v", doc.Info)
	}
	if !json.Valid(openapi.Document()) {
		t.Fatal("openapi.Document() is not JSON")
	}
}

// The operations the HTTP server registers (internal/httpapi/server.go); routes_test.go
// checks this list against the real server.
var wantOperations = []string{
	"DELETE /api/auth/api-keys/{id}",
	"DELETE /api/v1/dead-letters/{id}",
	"DELETE /api/v1/users/{userId}/events",
	"GET /api/auth/api-keys",
	"GET /api/auth/me",
	"GET /api/health",
	"GET /api/live",
	"GET /api/metrics",
	"GET /api/metrics/history",
	"GET /api/metrics/ingestion",
	"GET /api/metrics/stream",
	"GET /api/ready",
	"GET /api/users",
	"GET /api/v1/analytics/metrics",
	"GET /api/v1/dead-letters",
	"GET /api/v1/dead-letters/{id}",
	"GET /api/v1/events",
	"GET /api/v1/events/export",
	"GET /api/v1/events/live",
	"GET /api/v1/events/stats",
	"GET /api/v1/events/{eventId}",
	"GET /array/{token}/config",
	"GET /docs",
	"GET /metrics",
	"GET /openapi.json",
	"GET /v1/projects/{writeKey}/settings",
	"PATCH /api/users/{id}",
	"POST /api/auth/api-key",
	"POST /api/auth/request-code",
	"POST /api/auth/verify",
	"POST /api/users",
	"POST /api/v1/dead-letters/replay",
	"POST /api/v1/dead-letters/{id}/replay",
	"POST /api/v1/events",
	"POST /api/v1/events/batch",
	"POST /api/v1/events/import",
	"POST /batch/",
	"POST /capture/",
	"POST /decide/",
	"POST /e/",
	"POST /flags/",
	"POST /i/v0/e/",
	"POST /track/",
	"POST /v1/{call}",
}

func TestPaths(t *testing.T) {
	if got := Paths(); !slices.Equal(got, wantOperations) {
		t.Fatalf("Paths() =\n%q\nwant\n%q", got, wantOperations)
	}
}

// security is what each operation accepts: "key or session" (x-api-key or Authorization:
// Bearer), "session", or nothing (absent).
var security = map[string]string{
	"POST /api/v1/events":                  "key or session",
	"POST /api/v1/events/batch":            "key or session",
	"POST /api/v1/events/import":           "key or session",
	"GET /api/v1/events/stats":             "key or session",
	"GET /api/metrics":                     "key or session",
	"GET /api/metrics/history":             "key or session",
	"GET /api/metrics/ingestion":           "key or session",
	"GET /api/metrics/stream":              "key or session",
	"GET /api/v1/analytics/metrics":        "key or session",
	"GET /api/v1/events":                   "key or session",
	"GET /api/v1/events/{eventId}":         "key or session",
	"DELETE /api/v1/users/{userId}/events": "session",
	"GET /api/v1/events/export":            "key or session",
	"GET /api/v1/events/live":              "key or session",
	// Dead-letter management.
	"GET /api/v1/dead-letters":              "session",
	"GET /api/v1/dead-letters/{id}":         "session",
	"POST /api/v1/dead-letters/{id}/replay": "session",
	"POST /api/v1/dead-letters/replay":      "session",
	"DELETE /api/v1/dead-letters/{id}":      "session",
	// Accounts.
	"GET /api/auth/me":               "session",
	"POST /api/auth/api-key":         "session",
	"GET /api/auth/api-keys":         "session",
	"DELETE /api/auth/api-keys/{id}": "session",
	"GET /api/users":                 "session",
	"POST /api/users":                "session",
	"PATCH /api/users/{id}":          "session",
	// Segment's API: the write key as HTTP Basic's user name (or in the body), or x-api-key.
	"POST /v1/{call}": "write key",
	// PostHog's API: the project key in the body, Authorization: Bearer, or x-api-key.
	"POST /batch/":   "project key",
	"POST /capture/": "project key",
	"POST /e/":       "project key",
	"POST /track/":   "project key",
	"POST /i/v0/e/":  "project key",
}

// securityOf describes an operation's security requirement in the terms of security.
func securityOf(op *openapi3.Operation) string {
	if op.Security == nil {
		return ""
	}
	var names []string
	for _, req := range *op.Security {
		if len(req) != 1 {
			return "?"
		}
		for name := range req {
			names = append(names, name)
		}
	}
	switch strings.Join(names, " ") {
	case "apiKey bearerAuth":
		return "key or session"
	case "bearerAuth":
		return "session"
	case "segmentWriteKey apiKey":
		return "write key"
	case "projectKey apiKey":
		return "project key"
	}
	return "?" + strings.Join(names, " ")
}

func TestOperations(t *testing.T) {
	doc := mustDoc(t)
	scheme := doc.Components.SecuritySchemes["apiKey"]
	if scheme == nil || scheme.Value.Type != "apiKey" || scheme.Value.In != "header" || scheme.Value.Name != "x-api-key" {
		t.Fatalf("securitySchemes.apiKey = %+v", scheme)
	}
	bearer := doc.Components.SecuritySchemes["bearerAuth"]
	if bearer == nil || bearer.Value.Type != "http" || bearer.Value.Scheme != "bearer" || bearer.Value.BearerFormat != "JWT" {
		t.Fatalf("securitySchemes.bearerAuth = %+v", bearer)
	}
	if doc.Security != nil {
		t.Errorf("global security should be empty; set per operation")
	}
	wantStatuses := map[string][]string{
		"POST /api/v1/events":                  {"200", "202", "400", "401", "403", "413", "415", "500", "503"},
		"POST /api/v1/events/batch":            {"202", "400", "401", "403", "413", "415", "500", "503"},
		"POST /api/v1/events/import":           {"200", "400", "401", "403", "413", "415", "500", "503"},
		"GET /api/v1/events/stats":             {"200", "401", "403", "500", "503"},
		"GET /api/metrics":                     {"200", "401", "403", "500", "503"},
		"GET /api/metrics/history":             {"200", "401", "403", "500", "503"},
		"GET /api/metrics/ingestion":           {"200", "401", "403", "500", "503"},
		"GET /api/metrics/stream":              {"200", "401", "403", "500", "503"},
		"GET /api/v1/analytics/metrics":        {"200", "400", "401", "403", "500", "503"},
		"GET /api/v1/events":                   {"200", "400", "401", "403", "500", "503"},
		"GET /api/v1/events/{eventId}":         {"200", "400", "401", "403", "404", "500", "503"},
		"DELETE /api/v1/users/{userId}/events": {"200", "400", "401", "403", "429", "500", "503"},
		"GET /api/v1/events/export":            {"200", "400", "401", "403", "429", "500", "503"},
		"GET /api/v1/events/live":              {"200", "400", "401", "403", "429", "500"},
		"GET /api/health":                      {"200", "500", "503"},
		"GET /api/ready":                       {"200", "500", "503"},
		"GET /api/live":                        {"200", "500"},
		"GET /openapi.json":                    {"200"},
		"GET /docs":                            {"200"},
		"GET /metrics":                         {"200", "401"},
		// Dead-letter management.
		"GET /api/v1/dead-letters":              {"200", "400", "401", "403", "500", "503"},
		"GET /api/v1/dead-letters/{id}":         {"200", "401", "403", "404", "500", "503"},
		"POST /api/v1/dead-letters/{id}/replay": {"200", "401", "403", "404", "409", "500", "503"},
		"POST /api/v1/dead-letters/replay":      {"200", "401", "403", "500", "503"},
		"DELETE /api/v1/dead-letters/{id}":      {"200", "401", "403", "404", "500", "503"},
		// Accounts.
		"POST /api/auth/request-code":          {"200", "400", "413", "415", "429", "500", "503"},
		"POST /api/auth/verify":                {"200", "400", "401", "403", "413", "415", "429", "500", "503"},
		"GET /api/auth/me":                     {"200", "401", "429", "500", "503"},
		"POST /api/auth/api-key":               {"200", "400", "401", "403", "413", "415", "429", "500", "503"},
		"GET /api/auth/api-keys":               {"200", "401", "403", "429", "500", "503"},
		"DELETE /api/auth/api-keys/{id}":       {"200", "401", "403", "404", "429", "500", "503"},
		"GET /api/users":                       {"200", "401", "403", "500", "503"},
		"POST /api/users":                      {"201", "400", "401", "403", "409", "413", "415", "500", "503"},
		"PATCH /api/users/{id}":                {"200", "400", "401", "403", "404", "409", "413", "415", "500", "503"},
		"POST /v1/{call}":                      {"200", "400", "401", "403", "404", "413", "415", "503"},
		"POST /batch/":                         {"200", "400", "401", "403", "413", "415", "503"},
		"POST /capture/":                       {"200", "400", "401", "403", "413", "415", "503"},
		"POST /e/":                             {"200", "400", "401", "403", "413", "415", "503"},
		"POST /track/":                         {"200", "400", "401", "403", "413", "415", "503"},
		"POST /i/v0/e/":                        {"200", "400", "401", "403", "413", "415", "503"},
		"POST /flags/":                         {"200"},
		"POST /decide/":                        {"200"},
		"GET /array/{token}/config":            {"200"},
		"GET /v1/projects/{writeKey}/settings": {"200"},
	}
	ids := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			if op.OperationID == "" || ids[op.OperationID] {
				t.Errorf("%s: operationId %q missing or repeated", name, op.OperationID)
			}
			ids[op.OperationID] = true
			if got := securityOf(op); got != security[name] {
				t.Errorf("%s: security %q, want %q", name, got, security[name])
			}
			statuses := op.Responses.Keys()
			slices.Sort(statuses)
			if !slices.Equal(statuses, wantStatuses[name]) {
				t.Errorf("%s: statuses %v, want %v", name, statuses, wantStatuses[name])
			}
			for _, status := range statuses {
				resp := op.Responses.Value(status).Value
				if h := resp.Headers["X-Request-Id"]; h == nil || !h.Value.Required {
					t.Errorf("%s %s: no required X-Request-Id header", name, status)
				}
				// Retry-After on every 429, and on every 503 but those of the health routes.
				_, retry := resp.Headers["Retry-After"]
				health := path == "/api/health" || path == "/api/ready"
				if wantRetry := status == "429" || status == "503" && !health; retry != wantRetry {
					t.Errorf("%s %s: Retry-After documented = %v, want %v", name, status, retry, wantRetry)
				}
				if len(resp.Content) != 1 && name+" "+status != "GET /api/v1/events/export 200" { // NDJSON or CSV
					t.Errorf("%s %s: %d content types, want 1", name, status, len(resp.Content))
				}
			}
			// A replay takes no body, PostHog's flags and decide a body evp does not read;
			// every other POST or PATCH takes one, JSON but for an import's lines.
			if (method == http.MethodPost || method == http.MethodPatch) && !strings.HasSuffix(path, "/replay") && path != "/flags/" && path != "/decide/" {
				ct := "application/json"
				if path == "/api/v1/events/import" {
					ct = "application/x-ndjson"
				}
				if op.RequestBody == nil || !op.RequestBody.Value.Required || op.RequestBody.Value.Content.Get(ct) == nil {
					t.Errorf("%s: no required %s request body", name, ct)
				}
			}
		}
	}
}

// Every example in the document is a valid instance of its schema, checked through
// ValidateResponse (responses) and the request schemas.
func TestExamplesValidate(t *testing.T) {
	doc := mustDoc(t)
	n := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status, ref := range op.Responses.Map() {
				for ct, media := range ref.Value.Content {
					var examples []any
					if media.Example != nil {
						examples = append(examples, media.Example)
					}
					for _, ex := range media.Examples {
						examples = append(examples, ex.Value.Value)
					}
					for _, ex := range examples {
						body, _ := json.Marshal(ex)
						code := atoi(t, status)
						if err := ValidateResponse(method, path, code, ct, body); err != nil {
							t.Errorf("example of %s %s %s: %v", method, path, status, err)
						}
						n++
					}
				}
			}
			if op.RequestBody != nil {
				for _, media := range op.RequestBody.Value.Content {
					examples := []any{}
					if media.Example != nil {
						examples = append(examples, media.Example)
					}
					for _, ex := range media.Examples {
						examples = append(examples, ex.Value.Value)
					}
					for _, ex := range examples {
						if err := media.Schema.Value.VisitJSON(ex, openapi3.EnableJSONSchema2020(), openapi3.VisitAsRequest()); err != nil {
							t.Errorf("request example of %s %s: %v", method, path, err)
						}
						n++
					}
				}
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d examples checked", n)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("status %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// The request schemas say what the server's decoder enforces (internal/event).
func TestEventSchemas(t *testing.T) {
	doc := mustDoc(t)
	check := func(schemaName, body string, valid bool) {
		t.Helper()
		var v any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatal(err)
		}
		err := doc.Components.Schemas[schemaName].Value.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.VisitAsRequest())
		if (err == nil) != valid {
			t.Errorf("%s %s: valid = %v, want %v (%v)", schemaName, body, err == nil, valid, err)
		}
	}
	const base = `"eventType":"page_view","userId":"u1","sessionId":"s1","timestamp":"2024-01-15T10:30:00Z"`
	check("Event", `{`+base+`}`, true)
	check("Event", `{`+base+`,"metadata":{"a":1},"payload":{"b":[1]},"priority":10,"eventId":"x","extra":true}`, true)
	check("Event", `{`+base+`,"metadata":null,"payload":null,"priority":null,"eventId":null}`, true)
	check("Event", `{`+base+`,"priority":0}`, true)
	check("Event", `{"eventType":"a.b-c_1","userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00.123+05:30"}`, true)
	check("Event", `{`+base+`,"priority":11}`, false)
	check("Event", `{`+base+`,"priority":-1}`, false)
	check("Event", `{`+base+`,"priority":1.5}`, false)
	check("Event", `{`+base+`,"priority":"1"}`, false)
	check("Event", `{`+base+`,"metadata":[1]}`, false)
	check("Event", `{`+base+`,"payload":"x"}`, false)
	check("Event", `{`+base+`,"eventId":""}`, false)
	check("Event", `{`+base+`,"eventId":"`+strings.Repeat("x", 129)+`"}`, false)
	check("Event", `{"eventType":"1abc","userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00Z"}`, false)
	check("Event", `{"eventType":"a b","userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00Z"}`, false)
	check("Event", `{"eventType":"`+strings.Repeat("a", 101)+`","userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00Z"}`, false)
	check("Event", `{"eventType":"a","userId":"","sessionId":"s","timestamp":"2024-01-15T10:30:00Z"}`, false)
	check("Event", `{"eventType":"a","userId":"u","sessionId":"`+strings.Repeat("é", 129)+`","timestamp":"2024-01-15T10:30:00Z"}`, false)
	check("Event", `{"eventType":"a","userId":"u","sessionId":"`+strings.Repeat("é", 128)+`","timestamp":"2024-01-15T10:30:00Z"}`, true)
	check("Event", `{"eventType":"a","userId":"u","sessionId":"s","timestamp":"yesterday"}`, false)
	check("Event", `{"eventType":"a","userId":"u","sessionId":"s"}`, false)
	check("Event", `{"eventType":null,"userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00Z"}`, false)

	ev := `{` + base + `}`
	check("BatchRequest", `{"events":[`+ev+`]}`, true)
	check("BatchRequest", `{"events":[`+strings.TrimSuffix(strings.Repeat(ev+",", 1000), ",")+`]}`, true)
	check("BatchRequest", `{"events":[`+strings.TrimSuffix(strings.Repeat(ev+",", 1001), ",")+`]}`, false)
	check("BatchRequest", `{"events":[]}`, false)
	check("BatchRequest", `{}`, false)
	check("BatchRequest", `{"events":[`+ev+`,{"eventType":"a"}]}`, false)
}

func TestValidateResponse(t *testing.T) {
	const ct = "application/json; charset=utf-8"
	cases := []struct {
		name          string
		method, path  string
		status        int
		contentType   string
		body          string
		wantErrSubstr string // "" = valid
	}{
		{"accepted", "POST", "/api/v1/events", 202, ct,
			`{"success":true,"data":{"eventId":"evt_01HMAQ3B2Z8K1Y7T5W6X9C4D0E","accepted":true,"duplicate":false,"message":"Event accepted for processing"}}`, ""},
		{"accepted without eventId", "POST", "/api/v1/events", 202, ct,
			`{"success":true,"data":{"accepted":true,"duplicate":false,"message":"Event accepted for processing"}}`, "eventId"},
		{"undocumented status", "POST", "/api/v1/events", 201, ct,
			`{"success":true,"data":{"eventId":"e","accepted":true,"duplicate":false,"message":"Event accepted for processing"}}`, "status 201 is not documented"},
		{"404 undocumented", "GET", "/api/live", 404, ct, `{"success":false,"error":{"code":"NOT_FOUND","message":"x"}}`, "not documented"},
		{"duplicate", "POST", "/api/v1/events", 200, ct,
			`{"success":true,"data":{"eventId":"e1","accepted":false,"duplicate":true,"message":"Event already processed (duplicate)"}}`, ""},
		{"202 that says duplicate", "POST", "/api/v1/events", 202, ct,
			`{"success":true,"data":{"eventId":"e1","accepted":false,"duplicate":true,"message":"Event already processed (duplicate)"}}`, "body does not match"},
		{"success false on 202", "POST", "/api/v1/events", 202, ct,
			`{"success":false,"data":{"eventId":"e1","accepted":true,"duplicate":false,"message":"Event accepted for processing"}}`, "body does not match"},
		{"wrong content type", "POST", "/api/v1/events", 202, "text/plain",
			`{"success":true,"data":{"eventId":"e","accepted":true,"duplicate":false,"message":"Event accepted for processing"}}`, "not documented"},
		{"not JSON", "POST", "/api/v1/events", 202, ct, `accepted`, "not JSON"},
		{"undocumented path", "GET", "/api/nope", 200, ct, `{}`, "not documented"},
		{"undocumented method", "DELETE", "/api/v1/events", 200, ct, `{}`, "not documented"},
		{"validation error", "POST", "/api/v1/events/batch", 400, ct,
			`{"success":false,"error":{"code":"VALIDATION_ERROR","message":"validation failed","details":[{"path":"events[3].timestamp","reason":"is required"}]}}`, ""},
		{"details not a list", "POST", "/api/v1/events/batch", 400, ct,
			`{"success":false,"error":{"code":"VALIDATION_ERROR","message":"m","details":{"path":"x"}}}`, "body does not match"},
		{"detail without reason", "POST", "/api/v1/events/batch", 400, ct,
			`{"success":false,"error":{"code":"VALIDATION_ERROR","message":"m","details":[{"path":"x"}]}}`, "body does not match"},
		{"code of another status", "POST", "/api/v1/events", 401, ct,
			`{"success":false,"error":{"code":"VALIDATION_ERROR","message":"m"}}`, "body does not match"},
		{"unknown code", "POST", "/api/v1/events", 400, ct,
			`{"success":false,"error":{"code":"OOPS","message":"m"}}`, "body does not match"},
		{"missing key", "POST", "/api/v1/events", 401, ct, `{"success":false,"error":{"code":"MISSING_API_KEY","message":"m"}}`, ""},
		{"no credentials", "GET", "/api/metrics", 401, ct, `{"success":false,"error":{"code":"UNAUTHORIZED","message":"m"}}`, ""},
		{"missing key on a read route", "GET", "/api/metrics", 401, ct, `{"success":false,"error":{"code":"MISSING_API_KEY","message":"m"}}`, "body does not match"},
		{"forbidden", "GET", "/api/v1/dead-letters", 403, ct, `{"success":false,"error":{"code":"FORBIDDEN","message":"m"}}`, ""},
		{"rate limited", "POST", "/api/auth/verify", 429, ct, `{"success":false,"error":{"code":"RATE_LIMITED","message":"m"}}`, ""},
		{"session", "POST", "/api/auth/verify", 200, ct,
			`{"success":true,"data":{"token":"t","expiresAt":"2026-11-26T12:00:00Z","user":{"id":"usr_1","email":"a@example.com","role":"ADMIN"}}}`, ""},
		{"session with an unknown role", "POST", "/api/auth/verify", 200, ct,
			`{"success":true,"data":{"token":"t","expiresAt":"2026-11-26T12:00:00Z","user":{"id":"usr_1","email":"a@example.com","role":"ROOT"}}}`, "body does not match"},
		{"api key listing with a hash", "GET", "/api/auth/api-keys", 200, ct,
			`{"success":true,"data":[{"id":"key_1","name":"n","prefix":"evp_abcd","last4":"wxyz","createdAt":"2026-11-25T12:00:00Z","hash":"00"}]}`, "body does not match"},
		{"unavailable", "POST", "/api/v1/events/batch", 503, ct, `{"success":false,"error":{"code":"SERVICE_UNAVAILABLE","message":"m"}}`, ""},
		{"stats", "GET", "/api/v1/events/stats", 200, ct,
			`{"success":true,"data":{"ingestionRate":0,"totalIngested":0,"timestamp":"2024-01-15T10:30:00.123456789Z"}}`, ""},
		{"stats bad timestamp", "GET", "/api/v1/events/stats", 200, ct,
			`{"success":true,"data":{"ingestionRate":0,"totalIngested":0,"timestamp":"now"}}`, "body does not match"},
		{"stats error", "GET", "/api/v1/events/stats", 500, ct, `{"success":false,"error":{"code":"STATS_ERROR","message":"m"}}`, ""},
		{"stats with metrics error", "GET", "/api/v1/events/stats", 500, ct, `{"success":false,"error":{"code":"METRICS_ERROR","message":"m"}}`, "body does not match"},
		{"metrics before first batch", "GET", "/api/metrics", 200, ct,
			`{"success":true,"data":{"ingestion":{"rate":0,"totalIngested":0},"processing":{"totalEvents":0,"eventsPerSecond":0,"totalBatches":0,"lastBatchSize":0,"lastProcessedTimestamp":null},"errors":{"failedEvents":0,"dlqEvents":0},"queue":{"streamLength":0,"consumerGroups":1,"pendingMessages":0},"eventsByType":{},"timestamp":"2024-01-15T10:30:00Z"}}`, ""},
		{"metrics missing processing", "GET", "/api/metrics", 200, ct,
			`{"success":true,"data":{"ingestion":{"rate":0,"totalIngested":0},"errors":{"failedEvents":0,"dlqEvents":0},"queue":{"streamLength":0,"consumerGroups":1,"pendingMessages":0},"eventsByType":{},"timestamp":"2024-01-15T10:30:00Z"}}`, "processing"},
		{"health", "GET", "/api/health", 200, ct,
			`{"status":"healthy","version":"dev","uptime":1.5,"timestamp":"2024-01-15T10:30:00Z","services":{"sqlite":{"status":"up","latencyMs":0.1}}}`, ""},
		{"health bad service status", "GET", "/api/health", 503, ct,
			`{"status":"unhealthy","version":"dev","uptime":1.5,"timestamp":"2024-01-15T10:30:00Z","services":{"sqlite":{"status":"broken","latencyMs":0.1}}}`, "body does not match"},
		{"ready", "GET", "/api/ready", 200, ct, `{"ready":true}`, ""},
		{"ready false on 200", "GET", "/api/ready", 200, ct, `{"ready":false}`, "body does not match"},
		{"not ready", "GET", "/api/ready", 503, ct, `{"ready":false}`, ""},
		{"live", "GET", "/api/live", 200, ct, `{"live":true}`, ""},
		{"docs page", "GET", "/docs", 200, "text/html; charset=utf-8", `<!DOCTYPE html>`, ""},
		{"docs as JSON", "GET", "/docs", 200, ct, `{}`, "not documented"},
		{"document", "GET", "/openapi.json", 200, "application/json", string(openapi.Document()), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateResponse(c.method, c.path, c.status, c.contentType, []byte(c.body))
			switch {
			case c.wantErrSubstr == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case c.wantErrSubstr != "" && err == nil:
				t.Fatalf("want an error containing %q, got nil", c.wantErrSubstr)
			case c.wantErrSubstr != "" && !strings.Contains(err.Error(), c.wantErrSubstr):
				t.Fatalf("want an error containing %q, got %v", c.wantErrSubstr, err)
			}
		})
	}
}

func TestValidateHeaders(t *testing.T) {
	h := http.Header{}
	if err := ValidateHeaders("POST", "/api/v1/events", 503, h); err == nil ||
		!strings.Contains(err.Error(), "X-Request-Id") || !strings.Contains(err.Error(), "Retry-After") {
		t.Fatalf("no headers: %v", err)
	}
	h.Set("X-Request-Id", "req_1")
	h.Set("Retry-After", "1")
	if err := ValidateHeaders("POST", "/api/v1/events", 503, h); err != nil {
		t.Fatal(err)
	}
	h.Set("Retry-After", "soon")
	if err := ValidateHeaders("POST", "/api/v1/events", 503, h); err == nil {
		t.Fatal("Retry-After: soon passed")
	}
	h.Set("Retry-After", "0")
	if err := ValidateHeaders("POST", "/api/v1/events", 503, h); err == nil {
		t.Fatal("Retry-After: 0 passed")
	}
	if err := ValidateHeaders("GET", "/api/live", 200, http.Header{"X-Request-Id": {"r"}}); err != nil {
		t.Fatal(err)
	}
	if err := ValidateHeaders("GET", "/api/live", 200, http.Header{}); err == nil {
		t.Fatal("missing X-Request-Id passed")
	}
}

func get(t *testing.T, h http.Handler, method, target string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mediaType(t *testing.T, r *http.Response) string {
	t.Helper()
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type %q: %v", r.Header.Get("Content-Type"), err)
	}
	return mt
}

func TestHandlerServes(t *testing.T) {
	h := openapi.Handler()
	cases := []struct {
		path, mediaType string
		minLen          int
	}{
		{"/openapi.json", "application/json", 1000},
		{"/docs", "text/html", 100},
		{"/docs/", "text/html", 100},
		{"/docs/swagger-ui-bundle.js", "text/javascript", 1 << 20},
		{"/docs/swagger-ui.css", "text/css", 100 << 10},
		{"/docs/evp-docs.js", "text/javascript", 100},
		{"/docs/evp-docs.css", "text/css", 10},
		{"/docs/LICENSE", "text/plain", 1000},
		{"/docs/NOTICE", "text/plain", 10},
	}
	for _, c := range cases {
		r := get(t, h, "GET", c.path)
		b := body(t, r)
		if r.StatusCode != 200 || mediaType(t, r) != c.mediaType || len(b) < c.minLen {
			t.Errorf("GET %s: %d %s, %d bytes; want 200 %s, at least %d bytes", c.path, r.StatusCode, r.Header.Get("Content-Type"), len(b), c.mediaType, c.minLen)
		}
		if r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("ETag") == "" {
			t.Errorf("GET %s: headers %v", c.path, r.Header)
		}
		if r.Header.Get("Content-Length") != "" && r.Header.Get("Content-Length") != itoa(len(b)) {
			t.Errorf("GET %s: Content-Length %s for %d bytes", c.path, r.Header.Get("Content-Length"), len(b))
		}
		// HEAD: same headers, no body.
		hr := get(t, h, "HEAD", c.path)
		if hr.StatusCode != 200 || hr.Header.Get("Content-Type") != r.Header.Get("Content-Type") || len(body(t, hr)) != 0 {
			t.Errorf("HEAD %s: %d %q", c.path, hr.StatusCode, hr.Header.Get("Content-Type"))
		}
		// A revalidation with the ETag costs no body.
		nr := get(t, h, "GET", c.path, "If-None-Match", r.Header.Get("ETag"))
		if nr.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match: %d, want 304", c.path, nr.StatusCode)
		}
	}
	if r := get(t, h, "GET", "/openapi.json"); string(body(t, r)) != string(openapi.Document()) {
		t.Error("/openapi.json does not serve openapi.Document()")
	}
	if r := get(t, h, "GET", "/openapi.json"); ValidateResponse("GET", "/openapi.json", r.StatusCode, r.Header.Get("Content-Type"), body(t, r)) != nil {
		t.Error("/openapi.json response does not match its own description")
	}
	r := get(t, h, "GET", "/docs")
	if err := ValidateResponse("GET", "/docs", r.StatusCode, r.Header.Get("Content-Type"), body(t, r)); err != nil {
		t.Error(err)
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("/docs CSP = %q", csp)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestHandlerNotFound(t *testing.T) {
	h := openapi.Handler()
	for _, c := range []struct{ method, path string }{
		{"GET", "/docs/nope.js"},
		{"GET", "/docs/README.md"},
		{"GET", "/docs/swagger-ui-bundle.js.map"},
		{"GET", "/docs/../openapi.json"},
		{"GET", "/docs/swaggerui/index.html"},
		{"GET", "/other"},
		{"POST", "/openapi.json"},
		{"DELETE", "/docs"},
	} {
		r := get(t, h, c.method, c.path)
		b := body(t, r)
		var env struct {
			Success bool `json:"success"`
			Error   struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if r.StatusCode != 404 || mediaType(t, r) != "application/json" || json.Unmarshal(b, &env) != nil ||
			env.Success || env.Error.Code != "NOT_FOUND" || env.Error.Message == "" {
			t.Errorf("%s %s: %d %s %s", c.method, c.path, r.StatusCode, r.Header.Get("Content-Type"), b)
		}
	}
}

var (
	attrRe   = regexp.MustCompile(`(?i)\b(src|href)\s*=\s*["']([^"']*)["']`)
	remoteRe = regexp.MustCompile(`(?i)^\s*(https?:)?//`)
)

// The docs page loads only what evp serves itself: no CDN, and every local reference works.
func TestDocsPageIsSelfContained(t *testing.T) {
	h := openapi.Handler()
	page := string(body(t, get(t, h, "GET", "/docs")))
	refs := attrRe.FindAllStringSubmatch(page, -1)
	var scripts, styles int
	for _, m := range refs {
		ref := m[2]
		if remoteRe.MatchString(ref) {
			t.Errorf("/docs references %s=%q, which is not served by evp", m[1], ref)
			continue
		}
		if strings.HasPrefix(ref, "data:") {
			continue
		}
		if !strings.HasPrefix(ref, "/docs/") {
			t.Errorf("/docs references %q outside /docs/", ref)
			continue
		}
		r := get(t, h, "GET", ref)
		if r.StatusCode != 200 {
			t.Errorf("/docs references %q, which answers %d", ref, r.StatusCode)
		}
		switch mediaType(t, r) {
		case "text/javascript":
			scripts++
		case "text/css":
			styles++
		}
	}
	if scripts != 2 || styles != 2 {
		t.Errorf("/docs loads %d scripts and %d stylesheets, want 2 and 2", scripts, styles)
	}
	if strings.Contains(strings.ToLower(page), "<script>") {
		t.Error("/docs has an inline script; the CSP forbids it")
	}
	for _, s := range []string{"http://", "https://"} {
		if strings.Contains(page, s) {
			t.Errorf("/docs page mentions %q", s)
		}
	}
	init := string(body(t, get(t, h, "GET", "/docs/evp-docs.js")))
	if !strings.Contains(init, `url: "/openapi.json"`) || strings.Contains(init, "http") {
		t.Errorf("evp-docs.js does not point Swagger UI at /openapi.json only:\n%s", init)
	}
}
