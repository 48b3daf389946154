// Package dashboard serves evp's web dashboard (the React app under web/) from the evp binary.
//
// The Vite build writes into dist/app, which is embedded with go:embed. dist/README.md is
// committed so that the embed pattern matches on a fresh clone where the web build has not run;
// such a binary serves a page that says how to build the dashboard instead of the app.
package dashboard

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed dist
var dist embed.FS

// Cache policies. Files under assets/ carry a content hash in their names (Vite), so they
// never change and may be cached for a year; everything else is revalidated on every load so
// that a new evp version is picked up at once.
const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cacheRevalidate = "no-cache"
)

// csp allows only evp's own origin. Inline style attributes are allowed for the chart
// library, which positions its elements with style attributes.
const csp = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

// file is one asset, prepared once: its bytes, a gzip copy when that is smaller, and an ETag.
type file struct {
	body        []byte
	gz          []byte
	contentType string
	etag        string
	cache       string
}

// Handler serves the dashboard: GET and HEAD only.
type Handler struct {
	files map[string]*file // by path without the leading slash
	index *file            // nil when the dashboard was not built into this binary
}

// New returns the handler for the dashboard embedded in this binary.
func New() *Handler {
	site, err := fs.Sub(dist, "dist/app")
	if err != nil {
		panic(err) // a constant, valid path
	}
	h, err := NewFS(site)
	if err != nil {
		panic(fmt.Sprintf("dashboard: embedded files: %v", err))
	}
	return h
}

// Built reports whether the dashboard's files are in this binary.
func (h *Handler) Built() bool { return h.index != nil }

// NewFS returns a handler serving the built dashboard in site (index.html at its root). A
// site without index.html, or one that does not exist, gives the "not built" page.
func NewFS(site fs.FS) (*Handler, error) {
	h := &Handler{files: map[string]*file{}}
	err := fs.WalkDir(site, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == "." {
				return fs.SkipDir // no build output at all
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		body, err := fs.ReadFile(site, p)
		if err != nil {
			return err
		}
		cache := cacheRevalidate
		if strings.HasPrefix(p, "assets/") {
			cache = cacheImmutable
		}
		h.files[p] = newFile(body, contentType(p), cache)
		return nil
	})
	if err != nil {
		return nil, err
	}
	h.index = h.files["index.html"]
	return h, nil
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".json", ".map":
		return "application/json"
	case ".webmanifest":
		return "application/manifest+json"
	}
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}

func compressible(ct string) bool {
	return strings.HasPrefix(ct, "text/") || strings.Contains(ct, "json") || strings.Contains(ct, "svg")
}

func newFile(body []byte, ct, cache string) *file {
	sum := sha256.Sum256(body)
	f := &file{body: body, contentType: ct, cache: cache, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	if compressible(ct) && len(body) > 512 {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(body) // into a bytes.Buffer: cannot fail
		_ = zw.Close()
		if buf.Len() < len(body)*9/10 {
			f.gz = buf.Bytes()
		}
	}
	return f
}

// ServeHTTP answers a file of the build when the path names one; a missing file under
// assets/ or with an extension gets 404 (a missing script must not be answered with HTML);
// any other path is a client-side route and gets index.html.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if h.index == nil {
		h.serve(w, r, notBuilt)
		return
	}
	p := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if f, ok := h.files[p]; ok && p != "index.html" {
		h.serve(w, r, f)
		return
	}
	if p == "assets" || strings.HasPrefix(p, "assets/") || path.Ext(p) != "" && p != "index.html" {
		w.Header().Set("Cache-Control", cacheRevalidate)
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	h.serve(w, r, h.index)
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, f *file) {
	hd := w.Header()
	hd.Set("Content-Type", f.contentType)
	hd.Set("Cache-Control", f.cache)
	hd.Set("ETag", f.etag)
	hd.Set("X-Content-Type-Options", "nosniff")
	if strings.HasPrefix(f.contentType, "text/html") {
		hd.Set("Content-Security-Policy", csp)
		hd.Set("Referrer-Policy", "no-referrer")
	}
	if f.gz != nil {
		hd.Add("Vary", "Accept-Encoding")
	}
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match, f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.body
	if f.gz != nil && acceptsGzip(r) {
		body = f.gz
		hd.Set("Content-Encoding", "gzip")
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

func etagMatches(header, etag string) bool {
	for _, m := range strings.Split(header, ",") {
		m = strings.TrimPrefix(strings.TrimSpace(m), "W/")
		if m == etag || m == "*" {
			return true
		}
	}
	return false
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		name, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(name) == "gzip" && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// notBuilt is what a binary built without the dashboard's files answers for every page.
var notBuilt = newFile([]byte(notBuiltPage), "text/html; charset=utf-8", cacheRevalidate)

const notBuiltPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>evp: dashboard not built</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem;color:#e2e8f0;background:#0f172a}
code,pre{background:#1e293b;border-radius:6px;padding:.1rem .35rem}
pre{padding:.75rem 1rem;overflow-x:auto}
a{color:#7dd3fc}
</style>
</head>
<body>
<main>
<h1>The evp dashboard is not built into this binary</h1>
<p>The API is running; only the web dashboard's files are missing, because this binary was
built before the dashboard (web/) was. Build the dashboard and evp together from the
repository root:</p>
<pre><code>make run      # builds the dashboard when missing, then builds and runs evp
make web      # only builds the dashboard (needs Node.js 20+ and npm)</code></pre>
<p>then restart evp. For working on the dashboard itself, <code>make web-dev</code> runs the
Vite dev server with hot reload against a running evp.</p>
<p>Meanwhile: <a href="/docs">API documentation</a> · <a href="/api/health">health</a></p>
</main>
</body>
</html>
`
