package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"testing"
)

// GET /api/metrics/stream always names the partition count and the stream keys: as the
// app gives them, or 1 and [stream] when it leaves them out.
func TestStreamPartitions(t *testing.T) {
	for _, c := range []struct {
		info           StreamInfo
		wantPartitions int
		wantStreams    []string
	}{
		{StreamInfo{Backend: "redis", Stream: "events_stream"}, 1, []string{"events_stream"}},
		{StreamInfo{Backend: "redis", Stream: "s", Partitions: 2, Streams: []string{"s:{a}", "s:{b}", "s"}}, 2, []string{"s:{a}", "s:{b}", "s"}},
	} {
		srv := New(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Keys: staticKeys{},
			Stream: func(context.Context) (StreamInfo, error) { return c.info, nil }})
		srv.SetReady(true)
		req := httptest.NewRequest("GET", "/api/metrics/stream", nil)
		req.Header.Set("x-api-key", "evp_bench")
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		var body struct {
			Data struct {
				Partitions *int     `json:"partitions"`
				Streams    []string `json:"streams"`
			} `json:"data"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != 200 {
			t.Fatalf("%d %s (%v)", rec.Code, rec.Body, err)
		}
		if d := body.Data; d.Partitions == nil || *d.Partitions != c.wantPartitions || !slices.Equal(d.Streams, c.wantStreams) {
			t.Errorf("%+v: got %s, want partitions %d, streams %v", c.info, rec.Body, c.wantPartitions, c.wantStreams)
		}
	}
}
