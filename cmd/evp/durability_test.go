package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/evp-dev/evp/internal/testutil"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// evpBinary builds this command once per test run; with -short the test skips, as every
// test that runs evp processes goes through here.
func evpBinary(t *testing.T) string {
	t.Helper()
	testutil.SkipShort(t, "builds and runs evp processes")
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "evp-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "evp")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is a real evp process.
type proc struct {
	cmd  *exec.Cmd
	url  string
	logs *bytes.Buffer
	done chan error
}

func startProc(t *testing.T, dir string, port int) *proc {
	t.Helper()
	return startProcWith(t, dir, port, nil, nil)
}

// startProcWith starts evp with args (a role, say) and extra environment.
func startProcWith(t *testing.T, dir string, port int, args, env []string) *proc {
	t.Helper()
	cmd := exec.Command(evpBinary(t), args...)
	cmd.Env = append(os.Environ(), "EVP_DATA_DIR="+dir, "PORT="+strconv.Itoa(port), "SERVER_HOST=127.0.0.1",
		"WORKER_BATCH_TIMEOUT_MS=20", "LOG_LEVEL=info", "EVP_LOG_FORMAT=json")
	cmd.Env = append(cmd.Env, env...)
	p := &proc{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", port), logs: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("evp logs:\n%s", p.logs)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(p.url + "/api/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("evp exited during start: %v\n%s", err, p.logs)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("evp not ready within 30 s\n%s", p.logs)
	return nil
}

type outcome struct {
	mu        sync.Mutex
	accepted  map[string]bool // answered 202
	uncertain map[string]bool // sent, no answer (the process died)
}

func send(client *http.Client, url, key string, ids []string) (int, error) {
	events := make([]map[string]any, len(ids))
	for i, id := range ids {
		events[i] = map[string]any{"eventId": id, "eventType": "durability", "userId": "u" + strconv.Itoa(i%7),
			"sessionId": "s", "timestamp": time.Now().Add(-time.Duration(i%4) * time.Hour).UTC().Format(time.RFC3339Nano), "payload": map[string]any{"i": i}}
	}
	body, _ := json.Marshal(map[string]any{"events": events})
	req, _ := http.NewRequest("POST", url+"/api/v1/events/batch", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", key)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			EventIDs []string `json:"eventIds"`
		} `json:"data"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&r) // only a 202 must carry the ids, checked below
	if resp.StatusCode == 202 && len(r.Data.EventIDs) != len(ids) {
		return resp.StatusCode, fmt.Errorf("202 with %d of %d ids", len(r.Data.EventIDs), len(ids))
	}
	return resp.StatusCode, nil
}

// TestKillNineLosesNothingAndDuplicatesNothing sends batches from several clients, kills
// evp with SIGKILL in the middle of the load, restarts it, and checks the store: every
// event answered 202 is stored exactly once, and nothing else is stored.
func TestKillNineLosesNothingAndDuplicatesNothing(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	p := startProc(t, dir, port)

	var out bytes.Buffer
	cmd := exec.Command(evpBinary(t), "apikey", "create", "--name", "durability")
	cmd.Env = append(os.Environ(), "EVP_DATA_DIR="+dir)
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(out.String())

	o := &outcome{accepted: map[string]bool{}, uncertain: map[string]bool{}}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for n := 0; ctx.Err() == nil; n++ {
				ids := make([]string, 25)
				for i := range ids {
					ids[i] = fmt.Sprintf("c%d-n%d-i%d", c, n, i)
				}
				status, err := send(client, p.url, key, ids)
				o.mu.Lock()
				for _, id := range ids {
					switch {
					case err == nil && status == 202:
						o.accepted[id] = true
					case err != nil:
						o.uncertain[id] = true
					}
				}
				o.mu.Unlock()
				if err != nil && status == 0 {
					return // the server is gone
				}
				if status != 202 {
					t.Errorf("status %d during load", status)
					return
				}
				time.Sleep(20 * time.Millisecond) // keeps the test's own memory of ids small
			}
		}()
	}
	// Kill once a good amount is accepted, and the analytics engine has written blocks of
	// the closed hours (it seals every 5 s), while requests are in flight.
	started := time.Now()
	deadline := started.Add(30 * time.Second)
	for {
		o.mu.Lock()
		n := len(o.accepted)
		o.mu.Unlock()
		if n >= 5000 && time.Since(started) > 7*time.Second || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	p.done <- nil
	wg.Wait()
	stop()
	if len(o.accepted) < 1000 {
		t.Fatalf("only %d events accepted before the kill", len(o.accepted))
	}
	t.Logf("accepted %d events before SIGKILL; %d in requests without an answer", len(o.accepted), len(o.uncertain))

	// The kill came after analytics blocks were written and before the last events were
	// in one: the restart reads the blocks and then the events after their watermark.
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "events.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	var blocks, watermark, lastSeq int64
	if err := db.QueryRow(`SELECT (SELECT COUNT(*) FROM analytics_block), (SELECT COALESCE(MAX(value), 0) FROM counters WHERE name = 'blocks_seq'),
		(SELECT COALESCE(MAX(seq), 0) FROM events)`).Scan(&blocks, &watermark, &lastSeq); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if blocks == 0 || watermark >= lastSeq {
		t.Fatalf("at the kill %d analytics blocks, watermark %d, last event %d: want blocks and events after them", blocks, watermark, lastSeq)
	}

	// Restart: what was buffered and not stored must be processed now.
	p2 := startProc(t, dir, port)
	waitDrained(t, p2.url, key)
	checkAnalytics(t, p2.url, key, dir)

	// A client retrying accepted events after the crash gets duplicates, not new events.
	var retry []string
	for id := range o.accepted {
		retry = append(retry, id)
		if len(retry) == 25 {
			break
		}
	}
	client := &http.Client{Timeout: 10 * time.Second}
	body, _ := json.Marshal(map[string]any{"events": batchOf(retry)})
	req, _ := http.NewRequest("POST", p2.url+"/api/v1/events/batch", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", key)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Data struct{ Accepted, Duplicates int }
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("retry after crash: %v", err)
	}
	resp.Body.Close()
	if r.Data.Duplicates != len(retry) || r.Data.Accepted != 0 {
		t.Errorf("retry after crash: accepted %d duplicates %d, want 0 and %d", r.Data.Accepted, r.Data.Duplicates, len(retry))
	}

	// Graceful stop: SIGTERM ends the process with code 0 within 10 s.
	p2.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p2.done:
		p2.done <- err
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("evp did not exit within 10 s of SIGTERM")
	}

	checkStored(t, dir, o)
}

// checkStored reads the store in dir: every event answered 202 is stored exactly once,
// nothing that was never sent is stored, and nothing was dead-lettered.
func checkStored(t *testing.T, dir string, o *outcome) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "events.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT event_id, COUNT(*) FROM events GROUP BY event_id`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
		stored[id] = true
	}
	rows.Close()
	missing := 0
	for id := range o.accepted {
		if !stored[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d events answered 202 are not stored", missing, len(o.accepted))
	}
	for id := range stored {
		if !o.accepted[id] && !o.uncertain[id] {
			t.Errorf("stored event %s was never sent", id)
		}
	}
	var dlq int
	if err := db.QueryRow(`SELECT COUNT(*) FROM events_dlq`).Scan(&dlq); err != nil {
		t.Fatal(err)
	}
	if dlq != 0 {
		t.Errorf("%d events dead-lettered", dlq)
	}
	t.Logf("stored %d events (%d accepted + %d of the unanswered)", len(stored), len(o.accepted), len(stored)-len(o.accepted))
}

// checkAnalytics asks the analytics of the last five hours and checks them against the
// events table in dir: after a crash the engine (blocks written before it, then the
// events after their watermark) counts exactly what is stored.
func checkAnalytics(t *testing.T, url, key, dir string) {
	t.Helper()
	from, to := time.Now().Add(-5*time.Hour).UTC(), time.Now().Add(time.Minute).UTC()
	req, _ := http.NewRequest("GET", url+"/api/v1/analytics/metrics?from="+from.Format(time.RFC3339)+"&to="+to.Format(time.RFC3339), nil)
	req.Header.Set("x-api-key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Data struct {
			TotalEvents, UniqueUsers, UniqueSessions int64
			EventsByType                             []struct {
				EventType string
				Count     int64
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("analytics after the crash: %d, %v", resp.StatusCode, err)
	}
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "events.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var total, users, sessions int64
	if err := db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT user_id), COUNT(DISTINCT session_id) FROM events WHERE ts >= ? AND ts < ?`,
		from.Truncate(time.Minute).UnixNano(), to.Truncate(time.Minute).UnixNano()).Scan(&total, &users, &sessions); err != nil {
		t.Fatal(err)
	}
	d := got.Data
	if d.TotalEvents != total || d.UniqueUsers != users || d.UniqueSessions != sessions || len(d.EventsByType) != 1 || d.EventsByType[0].Count != total {
		t.Fatalf("analytics after the crash: %d events of %d users and %d sessions, by type %+v; the store holds %d, %d, %d", d.TotalEvents, d.UniqueUsers, d.UniqueSessions, d.EventsByType, total, users, sessions)
	}
	t.Logf("analytics after the crash: %d events, exact", total)
}

func batchOf(ids []string) []map[string]any {
	events := make([]map[string]any, len(ids))
	for i, id := range ids {
		events[i] = map[string]any{"eventId": id, "eventType": "durability", "userId": "u", "sessionId": "s",
			"timestamp": time.Now().UTC().Format(time.RFC3339)}
	}
	return events
}

// waitDrained polls /api/metrics until the buffer is empty.
func waitDrained(t *testing.T, url, key string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", url+"/api/metrics", nil)
		req.Header.Set("x-api-key", key)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var m struct {
				Data struct {
					Queue struct {
						StreamLength int64 `json:"streamLength"`
					} `json:"queue"`
				} `json:"data"`
			}
			derr := json.NewDecoder(resp.Body).Decode(&m)
			resp.Body.Close()
			if derr == nil && resp.StatusCode == 200 && m.Data.Queue.StreamLength == 0 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("buffer not drained within 60 s")
}
