// Package openapitest checks HTTP responses against evp's OpenAPI document. It is for
// tests and tools, kept apart so that the evp binary does not link the validator.
package openapitest

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/evp-dev/evp/internal/openapi"
)

// The parsed document, loaded and checked on first use (not at start-up: only tests and
// tools need it).
var loadDocument = sync.OnceValues(func() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapi.Document())
	if err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi.json is not valid OpenAPI: %w", err)
	}
	return doc, nil
})

// Paths returns "METHOD /path" for every operation in the document, sorted; the same form as
// the route patterns httpapi registers (httpapi.Server.Routes).
func Paths() []string {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapi.Document(), &doc); err != nil {
		panic("openapi: openapi.json does not parse: " + err.Error()) // the tests catch this first
	}
	var out []string
	for p, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				out = append(out, strings.ToUpper(method)+" "+p)
			}
		}
	}
	sort.Strings(out)
	return out
}

// response finds the documented response of an operation for a status.
func response(method, routePattern string, status int) (*openapi3.Response, error) {
	doc, err := loadDocument()
	if err != nil {
		return nil, err
	}
	item := doc.Paths.Value(routePattern)
	if item == nil {
		return nil, fmt.Errorf("openapi: path %q is not documented", routePattern)
	}
	op := item.GetOperation(strings.ToUpper(method))
	if op == nil {
		return nil, fmt.Errorf("openapi: %s %s is not documented", strings.ToUpper(method), routePattern)
	}
	ref := op.Responses.Status(status)
	if ref == nil {
		ref = op.Responses.Default()
	}
	if ref == nil || ref.Value == nil {
		return nil, fmt.Errorf("openapi: status %d is not documented for %s %s (documented: %s)",
			status, strings.ToUpper(method), routePattern, strings.Join(op.Responses.Keys(), ", "))
	}
	return ref.Value, nil
}

// ValidateResponse checks a response against the document: the route (the documented path,
// such as "/api/v1/events", not a concrete URL) must have an operation for method, the
// status must be documented for it, the content type must be one it documents, and the
// body must match that content's schema (JSON Schema 2020-12, formats such as date-time
// asserted). It returns nil when everything matches, otherwise an error naming each
// mismatch.
func ValidateResponse(method, routePattern string, status int, contentType string, body []byte) error {
	resp, err := response(method, routePattern, status)
	if err != nil {
		return err
	}
	where := fmt.Sprintf("%s %s %d", strings.ToUpper(method), routePattern, status)
	if len(resp.Content) == 0 {
		if len(body) != 0 {
			return fmt.Errorf("openapi: %s: documented without a body, got %d bytes", where, len(body))
		}
		return nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("openapi: %s: bad Content-Type %q: %v", where, contentType, err)
	}
	media := resp.Content.Get(contentType)
	if media == nil {
		keys := make([]string, 0, len(resp.Content))
		for k := range resp.Content {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return fmt.Errorf("openapi: %s: Content-Type %q is not documented (documented: %s)", where, contentType, strings.Join(keys, ", "))
	}
	if media.Schema == nil || media.Schema.Value == nil {
		return nil
	}
	var value any
	if mt == "application/json" || strings.HasSuffix(mt, "+json") {
		if err := json.Unmarshal(body, &value); err != nil {
			return fmt.Errorf("openapi: %s: body is not JSON: %v", where, err)
		}
	} else {
		value = string(body)
	}
	if err := media.Schema.Value.VisitJSON(value,
		openapi3.EnableJSONSchema2020(), openapi3.VisitAsResponse(), openapi3.MultiErrors()); err != nil {
		return fmt.Errorf("openapi: %s: body does not match the schema: %w", where, err)
	}
	return nil
}

// ValidateHeaders checks a response's headers against those documented for the route and
// status: every required one (X-Request-Id always, Retry-After on 503 from ingestion) must be
// present, and every documented one present must match its schema.
func ValidateHeaders(method, routePattern string, status int, header http.Header) error {
	resp, err := response(method, routePattern, status)
	if err != nil {
		return err
	}
	where := fmt.Sprintf("%s %s %d", strings.ToUpper(method), routePattern, status)
	names := make([]string, 0, len(resp.Headers))
	for name := range resp.Headers {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		ref := resp.Headers[name]
		if ref == nil || ref.Value == nil {
			continue
		}
		h := ref.Value
		values := header.Values(name)
		if len(values) == 0 {
			if h.Required {
				errs = append(errs, fmt.Errorf("openapi: %s: header %s is required but absent", where, name))
			}
			continue
		}
		if h.Schema == nil || h.Schema.Value == nil {
			continue
		}
		var value any = values[0]
		if h.Schema.Value.Type.Is(openapi3.TypeInteger) || h.Schema.Value.Type.Is(openapi3.TypeNumber) {
			n, err := strconv.ParseFloat(values[0], 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("openapi: %s: header %s=%q is not a number", where, name, values[0]))
				continue
			}
			value = n
		}
		if err := h.Schema.Value.VisitJSON(value, openapi3.EnableJSONSchema2020(), openapi3.VisitAsResponse()); err != nil {
			errs = append(errs, fmt.Errorf("openapi: %s: header %s=%q: %w", where, name, values[0], err))
		}
	}
	return errors.Join(errs...)
}
