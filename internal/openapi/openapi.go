// Package openapi holds evp's OpenAPI 3.1 document and serves it, together with Swagger UI,
// at /openapi.json and /docs. Swagger UI's assets are embedded, so the docs page loads
// nothing from outside evp.
//
// The document (openapi.json) is written by hand and must describe every route that
// internal/httpapi registers; the tests here check it is valid OpenAPI, and ValidateResponse
// lets other tests check real responses against it.
package openapi

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed openapi.json
var document []byte

//go:embed swaggerui
var swaggerUI embed.FS

// Document returns the raw OpenAPI document (JSON). The caller must not modify it.
func Document() []byte { return document }

// asset is one file the handler serves, prepared once.
type asset struct {
	body        []byte
	contentType string
	etag        string
	csp         bool // the HTML page: send a Content-Security-Policy
}

func newAsset(body []byte, contentType string) *asset {
	sum := sha256.Sum256(body)
	return &asset{body: body, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
}

// docsCSP allows only evp's own origin. Swagger UI sets inline styles and uses data: URIs
// for some icons; scripts are only the two served under /docs/.
const docsCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; " +
	"base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

var contentTypes = map[string]string{
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".html": "text/html; charset=utf-8",
	".json": "application/json",
	".md":   "text/plain; charset=utf-8",
	".txt":  "text/plain; charset=utf-8",
	"":      "text/plain; charset=utf-8", // LICENSE, NOTICE
}

type handler struct {
	spec   *asset
	index  *asset
	assets map[string]*asset // by name under /docs/
}

// Handler serves:
//
//	GET /openapi.json   the document, application/json
//	GET /docs, /docs/   the Swagger UI page, text/html
//	GET /docs/<asset>   Swagger UI's scripts and styles and their licences
//
// HEAD is answered like GET. Anything else gets 404 with evp's error envelope.
func Handler() http.Handler { return sharedHandler() }

var sharedHandler = sync.OnceValue(newHandler)

func newHandler() http.Handler {
	h := &handler{spec: newAsset(document, "application/json"), assets: map[string]*asset{}}
	err := fs.WalkDir(swaggerUI, "swaggerui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := swaggerUI.ReadFile(p)
		if err != nil {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			ct = "application/octet-stream"
		}
		h.assets[path.Base(p)] = newAsset(b, ct)
		return nil
	})
	if err != nil {
		panic("openapi: reading embedded Swagger UI: " + err.Error()) // cannot happen with go:embed
	}
	h.index = h.assets["index.html"]
	h.index.csp = true
	delete(h.assets, "README.md")
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		notFound(w, r)
		return
	}
	var a *asset
	switch p := r.URL.Path; {
	case p == "/openapi.json":
		a = h.spec
	case p == "/docs" || p == "/docs/" || p == "/docs/index.html":
		a = h.index
	case strings.HasPrefix(p, "/docs/"):
		a = h.assets[strings.TrimPrefix(p, "/docs/")]
	}
	if a == nil {
		notFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("ETag", a.etag)
	// Revalidate every time: the names carry no version, and a 304 costs nothing.
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	if a.csp {
		hd.Set("Content-Security-Policy", docsCSP)
		hd.Set("Referrer-Policy", "no-referrer")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// notFound answers like evp's API: 404 with the error envelope.
func notFound(w http.ResponseWriter, r *http.Request) {
	msg, _ := json.Marshal("no route for " + r.Method + " " + r.URL.Path)
	body := `{"success":false,"error":{"code":"NOT_FOUND","message":` + string(msg) + "}}\n"
	hd := w.Header()
	hd.Set("Content-Type", "application/json; charset=utf-8")
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusNotFound)
	if r.Method != http.MethodHead {
		w.Write([]byte(body))
	}
}
