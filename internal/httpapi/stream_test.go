package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/evp-dev/evp/internal/queue"
)

// describeFunc is a BufferDescriber made of a function.
type describeFunc func(ctx context.Context) (queue.Description, error)

func (f describeFunc) Describe(ctx context.Context) (queue.Description, error) { return f(ctx) }

// GET /api/metrics/stream always names the partition count and the stream keys: as the
// app gives them, or 1 and [stream] when it leaves them out.
func TestStreamPartitions(t *testing.T) {
	for _, c := range []struct {
		info           queue.Description
		wantPartitions int
		wantStreams    []string
	}{
		{queue.Description{Backend: "redis", Stream: "events_stream"}, 1, []string{"events_stream"}},
		{queue.Description{Backend: "redis", Stream: "s", Partitions: 2, Streams: []string{"s:{a}", "s:{b}", "s"}}, 2, []string{"s:{a}", "s:{b}", "s"}},
	} {
		srv := New(Deps{Auth: AuthDeps{Keys: staticKeys{}}, Serving: ServingDeps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))},
			Reading: ReadingDeps{Stream: describeFunc(func(context.Context) (queue.Description, error) { return c.info, nil })}})
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
