package loadgen

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestRawClientFramingAndReconnects(t *testing.T) {
	var n, conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-Api-Key") != "k" || r.Header.Get("Content-Type") != "application/json" || r.URL.Path != "/api/v1/events" {
			t.Errorf("request %s %v", r.URL.Path, r.Header)
		}
		i := n.Add(1)
		switch i % 4 {
		case 0: // chunked
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprintf(w, `{"n":%d,`, i)
			w.(http.Flusher).Flush()
			fmt.Fprintf(w, `"echo":%q}`, body)
		case 1: // Content-Length
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"n":%d,"echo":%q}`, i, body)
		case 2: // the server closes the connection after answering
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusOK)
			fmt.Fprintf(w, `{"n":%d,"echo":%q}`, i, body)
		case 3: // empty body
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	cl, err := newRawClient(srv.URL+"/api/v1/events", http.Header{"Content-Type": {"application/json"}, "X-Api-Key": {"k"}}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rc := cl.conn()
	defer rc.close()
	var buf []byte
	for i := int64(1); i <= 40; i++ {
		payload := fmt.Sprintf(`{"req":%d}`, i)
		status, out, err := rc.post([]byte(payload), buf[:0])
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		buf = out
		want := map[int64]int{0: 202, 1: 400, 2: 200, 3: 204}[i%4]
		wantBody := fmt.Sprintf(`{"n":%d,"echo":%q}`, i, payload)
		if i%4 == 3 {
			wantBody = ""
		}
		if status != want || string(out) != wantBody {
			t.Fatalf("request %d: %d %q, want %d %q", i, status, out, want, wantBody)
		}
	}
	// One connection, plus a new one after each of the 10 the server closed.
	if got := conns.Load(); got != 11 {
		t.Errorf("%d connections for 40 requests, 10 of them closed by the server; want 11", got)
	}
}

func TestRawClientReportsADroppedConnection(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		c, _, _ := w.(http.Hijacker).Hijack()
		c.Close()
	}))
	defer srv.Close()
	cl, _ := newRawClient(srv.URL+"/x", nil, 10*time.Second)
	rc := cl.conn()
	for i := 0; i < 3; i++ {
		if _, _, err := rc.post([]byte("{}"), nil); err == nil || transportClass(err) != "connection closed" {
			t.Fatalf("post to a server that drops the connection: %v (%s)", err, transportClass(err))
		}
	}
}
