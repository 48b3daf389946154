package httpapi

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// segmentMessage appends a Segment track message carrying what benchEvent carries.
func segmentMessage(buf []byte, id int64) []byte {
	buf = append(buf, `{"type":"track","messageId":"bench-`...)
	buf = strconv.AppendInt(buf, id, 10)
	buf = append(buf, `","event":"page_view","userId":"user_`...)
	buf = strconv.AppendInt(buf, id%10000, 10)
	buf = append(buf, `","context":{"sessionId":"sess_`...)
	buf = strconv.AppendInt(buf, id%50000, 10)
	buf = append(buf, `","source":"web","browser":"chrome","version":"1.2.3"},"timestamp":"2024-01-15T10:30:00.123Z","properties":{"page":"/products/42","referrer":"https://example.com/search?q=shoes","durationMs":1234}}`...)
	return buf
}

// BenchmarkBatch100MemQueue compares a 100-event batch on evp's own route with a
// 100-message Segment batch carrying the same data, through Server.Handler over memQueue
// (see BenchmarkPostEventMemQueue), in one run; events/s is the figure to compare.
func BenchmarkBatch100MemQueue(b *testing.B) {
	for _, route := range []struct {
		name, path, key string
		open, close     string
		item            func([]byte, int64) []byte
	}{
		{"evp", "/api/v1/events/batch", "", `{"events":[`, `]}`, benchEvent},
		{"segment", "/v1/batch", "", `{"batch":[`, `],"sentAt":"2024-01-15T10:30:01.000Z"}`, segmentMessage},
	} {
		b.Run(route.name, func(b *testing.B) {
			s, key := memQueueServer(b)
			h := s.Handler()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var body []byte
				rd := bytes.NewReader(nil)
				req := httptest.NewRequest("POST", route.path, nil)
				req.Header.Set("Content-Type", "application/json")
				if route.name == "segment" {
					req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(key+":")))
				} else {
					req.Header.Set("x-api-key", key)
				}
				w := &discardWriter{h: http.Header{}}
				req.Body = io.NopCloser(rd)
				for pb.Next() {
					body = append(body[:0], route.open...)
					for i := range 100 {
						if i > 0 {
							body = append(body, ',')
						}
						body = route.item(body, benchSeq.Add(1))
					}
					body = append(body, route.close...)
					rd.Reset(body)
					req.ContentLength = int64(len(body))
					w.reset()
					h.ServeHTTP(w, req)
					if w.code != http.StatusAccepted && w.code != http.StatusOK {
						b.Errorf("status %d: %s", w.code, w.body)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
