package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
)

// slowScan gives one event, takes longer than the export's stall bound to find the next,
// then gives two more.
type slowScan struct{ pause time.Duration }

func (s slowScan) ScanEvents(ctx context.Context, _ store.EventQuery, fn func(*store.StoredEvent) bool) (*store.Position, error) {
	for i, id := range []string{"a", "b", "c"} {
		if i == 1 {
			time.Sleep(s.pause)
		}
		if !fn(&store.StoredEvent{Event: event.Event{EventID: id, EventType: "t", Timestamp: time.Unix(int64(10-i), 0)}}) {
			return nil, nil
		}
	}
	return nil, nil
}

func (slowScan) GetEvent(context.Context, string) (store.StoredEvent, error) {
	return store.StoredEvent{}, store.ErrNotFound
}

// The stall bound counts from the last write to the client, not from the start: a store
// that takes longer than it between two events does not cut an export a client reads at
// once.
func TestExportOutlastsASlowScan(t *testing.T) {
	defer func(d time.Duration) { exportStall = d }(exportStall)
	exportStall = 300 * time.Millisecond
	s := New(Deps{Auth: AuthDeps{Keys: staticKeys{}}, Reading: ReadingDeps{Events: slowScan{pause: 2 * exportStall}},
		Serving: ServingDeps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}})
	s.SetReady(true)
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.Config.WriteTimeout = exportStall // as the server's own WriteTimeout would
	hs.Start()
	defer hs.Close()
	req, _ := http.NewRequest("GET", hs.URL+"/api/v1/events/export", nil)
	req.Header.Set("x-api-key", "evp_bench")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var ids []string
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		ids = append(ids, sc.Text()[len(`{"eventId":"`):][:1])
	}
	if err := sc.Err(); err != nil || strings.Join(ids, "") != "abc" {
		t.Fatalf("exported %v, then %v; want a, b and c", ids, err)
	}
}

// failingScan gives n events, then fails.
type failingScan struct{ n int }

func (f failingScan) ScanEvents(ctx context.Context, _ store.EventQuery, fn func(*store.StoredEvent) bool) (*store.Position, error) {
	pad := json.RawMessage(`{"pad":"` + strings.Repeat("x", 200) + `"}`)
	for i := range f.n {
		if !fn(&store.StoredEvent{Event: event.Event{EventID: fmt.Sprint(i), EventType: "t", Payload: pad, Timestamp: time.Unix(int64(f.n-i), 0)}}) {
			return nil, nil
		}
	}
	return nil, errors.New("disk I/O error")
}

func (failingScan) GetEvent(context.Context, string) (store.StoredEvent, error) {
	return store.StoredEvent{}, store.ErrNotFound
}

// A store failing after the first bytes went out cuts the transfer: the client's read
// fails, rather than ending cleanly on a short file.
func TestExportCutOffOnFailure(t *testing.T) {
	s := New(Deps{Auth: AuthDeps{Keys: staticKeys{}}, Reading: ReadingDeps{Events: failingScan{n: 2000}},
		Serving: ServingDeps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}})
	s.SetReady(true)
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	req, _ := http.NewRequest("GET", hs.URL+"/api/v1/events/export", nil)
	req.Header.Set("x-api-key", "evp_bench")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if res.StatusCode != 200 || err == nil {
		t.Fatalf("status %d, %d bytes read, then %v; want a broken transfer", res.StatusCode, len(body), err)
	}
	if len(body) < 64<<10 {
		t.Fatalf("only %d bytes arrived before the cut", len(body))
	}
}
