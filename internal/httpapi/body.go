package httpapi

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
)

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// errHoldFull is readLimited's error when the in-flight bound has no room for more of the
// body.
var errHoldFull = errors.New("in-flight bound reached")

// exactBodyBytes is the body length from which a buffer of exactly the body's size is
// made, where doubling would waste much; smaller bodies grow pooled buffers as usual.
const exactBodyBytes = 1 << 20

// unknownBodyStart is the body bytes a request whose body length is unknown (gzip,
// chunked) reserves before reading; it reserves more as the body grows.
const unknownBodyStart = 64 << 10

// readJSONBody checks the content type and encoding and reads the whole body, at most max
// bytes after decompression. The returned buffer goes back with releaseBody when done.
func readJSONBody(r *http.Request, max int64) (*bytes.Buffer, *Error) {
	return readBody(r, max, nil)
}

// readBody is readJSONBody that also reserves room under the in-flight bound through h,
// when set: the whole body up front when its length is known (waiting a little for room),
// otherwise as it grows (without waiting). Past the bound it answers 503. The caller
// releases h once it no longer holds the body or what was made of it.
func readBody(r *http.Request, max int64, h *bodyHold) (*bytes.Buffer, *Error) {
	if e := checkJSONContentType(r.Header.Get("Content-Type")); e != nil {
		return nil, e
	}
	return readBodyBytes(r, max, h, false)
}

// readBodyBytes is readBody without the check of the content type; gzipped reads a body
// without Content-Encoding as gzip.
func readBodyBytes(r *http.Request, max int64, h *bodyHold, gzipped bool) (*bytes.Buffer, *Error) {
	var src io.Reader = r.Body
	known := r.ContentLength >= 0 // the body's length, until a decompressor is put in front
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	if gzipped && enc == "" {
		enc = "gzip"
	}
	switch enc {
	case "", "identity":
	case "gzip", "x-gzip":
		known = false
		zr, err := gzip.NewReader(io.LimitReader(r.Body, max+1))
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "INVALID_JSON", "body is not valid gzip: %v", err)
		}
		defer zr.Close()
		src = zr
	default:
		return nil, errorf(http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "Content-Encoding %q is not supported; send identity or gzip", enc)
	}
	if r.ContentLength > max {
		return nil, tooLarge(max)
	}
	grow := h // reserves as the body grows; nil when reserved up front
	if h != nil {
		start := int64(unknownBodyStart)
		if known {
			start, grow = r.ContentLength, nil
		}
		if !h.start(r.Context(), start) {
			return nil, inflightFull(r, max, h.b.max)
		}
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	if known && r.ContentLength >= exactBodyBytes && int64(buf.Cap()) < r.ContentLength+bytes.MinRead {
		// Exactly the size, rather than Grow's doubling: the reservation counts on it.
		*buf = *bytes.NewBuffer(make([]byte, 0, r.ContentLength+bytes.MinRead))
	}
	n, err := readLimited(buf, src, max+1, grow)
	if err != nil {
		releaseBody(buf)
		if errors.Is(err, errHoldFull) {
			return nil, inflightFull(r, max, h.b.max)
		}
		if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errorf(http.StatusBadRequest, "INVALID_JSON", "body is not valid gzip: %v", err)
		}
		return nil, errorf(http.StatusBadRequest, "INVALID_JSON", "could not read request body: %v", err)
	}
	if n > max {
		releaseBody(buf)
		return nil, tooLarge(max)
	}
	if grow != nil {
		grow.trim(n)
	}
	return buf, nil
}

// inflightFull is the answer when the in-flight bound has no room for r's body. It reads
// the rest of the body (at most max bytes) into a small buffer and drops it, so that the
// client, still sending, gets the answer rather than a broken connection.
func inflightFull(r *http.Request, max, bound int64) *Error {
	_, _ = io.CopyN(io.Discard, r.Body, max)
	return errUnavailable("evp is holding as many request bytes as it may (EVP_INFLIGHT_MAX_BYTES, %.1f MiB); retry shortly", float64(bound)/(1<<20))
}

// readLimited reads src into buf until EOF or until limit bytes were read, as
// buf.ReadFrom(io.LimitReader(src, limit)) does, without allocating the LimitedReader.
// With h set, the bytes read are reserved through h.grow as they come; when it has no room
// readLimited stops with errHoldFull.
func readLimited(buf *bytes.Buffer, src io.Reader, limit int64, h *bodyHold) (int64, error) {
	var n int64
	for n < limit {
		buf.Grow(bytes.MinRead)
		p := buf.AvailableBuffer()
		p = p[:min(int64(cap(p)), limit-n)]
		m, err := src.Read(p)
		buf.Write(p[:m]) // p is buf's own spare capacity: this only extends its length
		n += int64(m)
		if h != nil && !h.grow(n) {
			return n, errHoldFull
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func releaseBody(b *bytes.Buffer) {
	if b.Cap() <= 4<<20 { // do not keep rare huge buffers alive
		bufPool.Put(b)
	}
}

func tooLarge(max int64) *Error {
	return errorf(http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "request body is larger than %d bytes", max)
}

func checkJSONContentType(ct string) *Error {
	if ct == "" {
		return errorf(http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "Content-Type is missing; send application/json")
	}
	// Fast path for the common exact values.
	if ct == "application/json" || ct == "application/json; charset=utf-8" {
		return nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		if cs, ok := params["charset"]; !ok || strings.EqualFold(cs, "utf-8") {
			return nil
		}
	}
	return errorf(http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "Content-Type %q is not supported; send application/json", ct)
}
