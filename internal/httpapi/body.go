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

// readJSONBody checks the content type and encoding and reads the whole body, at most max
// bytes after decompression. The returned buffer goes back with releaseBody when done.
func readJSONBody(r *http.Request, max int64) (*bytes.Buffer, *Error) {
	if e := checkJSONContentType(r.Header.Get("Content-Type")); e != nil {
		return nil, e
	}
	var src io.Reader = r.Body
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
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
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	n, err := readLimited(buf, src, max+1)
	if err != nil {
		releaseBody(buf)
		var gzErr error = gzip.ErrChecksum
		if errors.Is(err, gzErr) || errors.Is(err, gzip.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errorf(http.StatusBadRequest, "INVALID_JSON", "body is not valid gzip: %v", err)
		}
		return nil, errorf(http.StatusBadRequest, "INVALID_JSON", "could not read request body: %v", err)
	}
	if n > max {
		releaseBody(buf)
		return nil, tooLarge(max)
	}
	return buf, nil
}

// readLimited reads src into buf until EOF or until limit bytes were read, as
// buf.ReadFrom(io.LimitReader(src, limit)) does, without allocating the LimitedReader.
func readLimited(buf *bytes.Buffer, src io.Reader, limit int64) (int64, error) {
	var n int64
	for n < limit {
		buf.Grow(bytes.MinRead)
		p := buf.AvailableBuffer()
		p = p[:min(int64(cap(p)), limit-n)]
		m, err := src.Read(p)
		buf.Write(p[:m]) // p is buf's own spare capacity: this only extends its length
		n += int64(m)
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
