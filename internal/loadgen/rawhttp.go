package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// rawClient is a minimal HTTP/1.1 client for plain-http targets: one keep-alive connection
// per worker, each request written with one write call (headers and body together), the
// answer read with Content-Length or chunked framing. It exists because net/http's client
// costs about as much CPU per request as evp's server does, and on a small machine the load
// generator shares the cores with the server it measures.
type rawClient struct {
	addr    string
	head    []byte // request line and fixed headers, ending in "Content-Length: "
	timeout time.Duration
	dialer  net.Dialer
}

func newRawClient(endpoint string, header map[string][]string, timeout time.Duration) (*rawClient, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("the raw client speaks only http, not %s", u.Scheme)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	path := u.RequestURI()
	h := []byte("POST " + path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: evp-loadgen\r\n")
	for k, vs := range header {
		for _, v := range vs {
			h = append(h, k+": "+v+"\r\n"...)
		}
	}
	h = append(h, "Content-Length: "...)
	return &rawClient{addr: addr, head: h, timeout: timeout,
		dialer: net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}}, nil
}

// rawConn is one worker's connection. Not safe for concurrent use.
type rawConn struct {
	cl   *rawClient
	c    net.Conn
	br   *bufio.Reader
	wbuf []byte
	used bool // a request completed on c
}

func (cl *rawClient) conn() *rawConn { return &rawConn{cl: cl} }

func (rc *rawConn) close() {
	if rc.c != nil {
		_ = rc.c.Close()
		rc.c = nil
	}
}

// errProtocol is an answer that is not HTTP/1.x as expected.
var errProtocol = errors.New("malformed HTTP answer")

// post sends body and appends the answer's body to dst. When writing the request on a kept
// connection fails (the server closed it while idle), it is sent once more on a new one; once
// a request was written it is never sent again, since the server may have acted on it.
func (rc *rawConn) post(body, dst []byte) (status int, out []byte, err error) {
	for attempt := 0; ; attempt++ {
		if rc.c == nil {
			c, err := rc.cl.dialer.Dial("tcp", rc.cl.addr)
			if err != nil {
				return 0, dst, err
			}
			rc.c, rc.used = c, false
			if rc.br == nil {
				rc.br = bufio.NewReaderSize(c, 16<<10)
			} else {
				rc.br.Reset(c)
			}
		}
		reused := rc.used
		var written bool
		status, out, written, err = rc.try(body, dst)
		if err == nil {
			return status, out, nil
		}
		rc.close()
		if attempt == 0 && reused && !written && idleClosed(err) {
			continue
		}
		return status, dst, err
	}
}

func idleClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// try runs one request on rc.c; written tells whether the request was written.
func (rc *rawConn) try(body, dst []byte) (status int, out []byte, written bool, err error) {
	w := append(rc.wbuf[:0], rc.cl.head...)
	w = strconv.AppendInt(w, int64(len(body)), 10)
	w = append(w, "\r\n\r\n"...)
	w = append(w, body...)
	rc.wbuf = w
	if rc.cl.timeout > 0 {
		if err := rc.c.SetDeadline(time.Now().Add(rc.cl.timeout)); err != nil {
			return 0, dst, false, err
		}
	}
	if _, err := rc.c.Write(w); err != nil {
		return 0, dst, false, err
	}
	line, err := rc.br.ReadSlice('\n')
	if err != nil {
		return 0, dst, true, err
	}
	// "HTTP/1.1 202 Accepted\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, dst, true, errProtocol
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, dst, true, errProtocol
	}
	closeAfter := line[7] == '0' // HTTP/1.0
	length, chunked := -1, false
	for {
		h, err := rc.br.ReadSlice('\n')
		if err != nil {
			return status, dst, true, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, val, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return status, dst, true, errProtocol
		}
		val = bytes.TrimSpace(val)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.Atoi(string(val))
			if err != nil || n < 0 {
				return status, dst, true, errProtocol
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.Contains(bytes.ToLower(val), []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(val, []byte("close")) {
				closeAfter = true
			}
		}
	}
	switch {
	case status == http.StatusNoContent || status == http.StatusNotModified || status < 200:
		// no body, whatever the headers say
	case chunked:
		dst, err = readChunked(rc.br, dst)
	case length >= 0:
		dst, err = readN(rc.br, dst, length)
	default:
		closeAfter = true
		var buf bytes.Buffer
		buf.Write(dst)
		_, err = buf.ReadFrom(rc.br)
		dst = buf.Bytes()
	}
	if err != nil {
		return status, dst, true, err
	}
	if closeAfter {
		rc.close()
	} else {
		rc.used = true
	}
	return status, dst, true, nil
}

func readN(r *bufio.Reader, dst []byte, n int) ([]byte, error) {
	start := len(dst)
	dst = grow(dst, n)
	_, err := io.ReadFull(r, dst[start:start+n])
	return dst[:start+n], err
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n+512)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

func readChunked(r *bufio.Reader, dst []byte) ([]byte, error) {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return dst, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 32)
		if err != nil || size < 0 {
			return dst, errProtocol
		}
		if size == 0 {
			for { // trailers, up to the empty line
				t, err := r.ReadSlice('\n')
				if err != nil {
					return dst, err
				}
				if len(bytes.TrimRight(t, "\r\n")) == 0 {
					return dst, nil
				}
			}
		}
		if dst, err = readN(r, dst, int(size)); err != nil {
			return dst, err
		}
		if crlf, err := r.ReadSlice('\n'); err != nil || len(bytes.TrimRight(crlf, "\r\n")) != 0 {
			return dst, errProtocol
		}
	}
}
