package dashboard

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

var site = fstest.MapFS{
	"index.html":             {Data: []byte(`<!doctype html><html><head><script type="module" src="/assets/index-abc123.js"></script></head><body><div id="root"></div></body></html>`)},
	"assets/index-abc123.js": {Data: []byte(strings.Repeat("console.log('evp dashboard');\n", 100))},
	"favicon.svg":            {Data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"></svg>`)},
}

func get(t *testing.T, h http.Handler, method, path string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func newSite(t *testing.T) *Handler {
	t.Helper()
	h, err := NewFS(site)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Built() {
		t.Fatal("Built() = false with index.html present")
	}
	return h
}

func TestClientRoutesGetIndexWithoutCaching(t *testing.T) {
	h := newSite(t)
	for _, p := range []string{"/", "/index.html", "/live", "/api-keys", "/users/123/edit", "/sign-in?next=%2F"} {
		w := get(t, h, "GET", p)
		if w.Code != 200 || !strings.Contains(w.Body.String(), `<div id="root">`) {
			t.Errorf("GET %s: %d %q, want index.html", p, w.Code, w.Body.String())
		}
		if cc := w.Header().Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", p, cc)
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET %s: Content-Type %q", p, ct)
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", p, csp)
		}
	}
}

func TestHashedAssetsAreImmutableAndGzipped(t *testing.T) {
	h := newSite(t)
	w := get(t, h, "GET", "/assets/index-abc123.js")
	if w.Code != 200 || !strings.Contains(w.Body.String(), "evp dashboard") {
		t.Fatalf("GET asset: %d", w.Code)
	}
	if cc := w.Header().Get("Cache-Control"); !strings.Contains(cc, "immutable") || !strings.Contains(cc, "max-age=31536000") {
		t.Errorf("asset Cache-Control %q, want a year, immutable", cc)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("asset Content-Type %q", ct)
	}
	gz := get(t, h, "GET", "/assets/index-abc123.js", "Accept-Encoding", "br, gzip")
	if gz.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("no gzip for a client that accepts it: %v", gz.Header())
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if !bytes.Equal(plain, w.Body.Bytes()) {
		t.Error("gzip body does not decode to the asset")
	}
	if gz.Body.Len() >= w.Body.Len() {
		t.Errorf("gzip body %d bytes, plain %d", gz.Body.Len(), w.Body.Len())
	}
	etag := w.Header().Get("ETag")
	if nm := get(t, h, "GET", "/assets/index-abc123.js", "If-None-Match", etag); nm.Code != http.StatusNotModified || nm.Body.Len() != 0 {
		t.Errorf("If-None-Match %s: %d with %d bytes, want 304 and none", etag, nm.Code, nm.Body.Len())
	}
	if other := get(t, h, "GET", "/favicon.svg"); other.Code != 200 || other.Header().Get("Cache-Control") != "no-cache" {
		t.Errorf("unhashed file: %d, Cache-Control %q", other.Code, other.Header().Get("Cache-Control"))
	}
}

func TestMissingFilesAreNotAnsweredWithHTML(t *testing.T) {
	h := newSite(t)
	for _, p := range []string{"/assets/index-old999.js", "/assets/", "/robots.txt", "/app.js.map"} {
		if w := get(t, h, "GET", p); w.Code != 404 || strings.Contains(w.Body.String(), "<div id=\"root\">") {
			t.Errorf("GET %s: %d %q, want a plain 404", p, w.Code, w.Body.String())
		}
	}
}

func TestHeadAndMethods(t *testing.T) {
	h := newSite(t)
	w := get(t, h, "HEAD", "/live")
	if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") == "0" {
		t.Errorf("HEAD: %d, %d body bytes, Content-Length %q", w.Code, w.Body.Len(), w.Header().Get("Content-Length"))
	}
	if w := get(t, h, "POST", "/live"); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", w.Code)
	}
}

func TestNotBuiltPageSaysHowToBuild(t *testing.T) {
	h, err := NewFS(fstest.MapFS{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Built() {
		t.Fatal("Built() = true without index.html")
	}
	for _, p := range []string{"/", "/analytics", "/assets/index-abc123.js"} {
		w := get(t, h, "GET", p)
		body := w.Body.String()
		if w.Code != 200 || !strings.Contains(body, "make web") || !strings.Contains(body, "make run") {
			t.Errorf("GET %s without a build: %d %q", p, w.Code, body)
		}
	}
}

// TestEmbeddedBuild checks what this binary embeds: the built dashboard when `make web` ran
// before the build, otherwise the page that says how to build it. Either way "/" answers 200.
func TestEmbeddedBuild(t *testing.T) {
	h := New()
	w := get(t, h, "GET", "/")
	if w.Code != 200 {
		t.Fatalf("GET /: %d", w.Code)
	}
	if h.Built() {
		if !strings.Contains(w.Body.String(), `id="root"`) {
			t.Errorf("built dashboard's index.html has no root element: %q", w.Body.String())
		}
	} else {
		t.Logf("dashboard not built into this test binary (run make web): serving the build instructions")
		if !strings.Contains(w.Body.String(), "make web") {
			t.Errorf("not-built page: %q", w.Body.String())
		}
	}
}
