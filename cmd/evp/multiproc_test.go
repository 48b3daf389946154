package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/testutil"
)

// TestScaledOutKillNine is the multi-process fault test: one `evp api` and three
// `evp worker` processes on Redis Streams (the store is the embedded SQLite file they share).
// Clients send 100,000 events or more; one worker is killed with SIGKILL mid-run and the API
// is killed and restarted once. Then every event answered 202 is stored exactly once,
// nothing else is stored, the dead-letter queue is empty and the stream drains.
func TestScaledOutKillNine(t *testing.T) {
	rc := testutil.Redis(t)
	prefix := testutil.RedisPrefix(t, rc)
	dir := t.TempDir()
	env := []string{"REDIS_URL=" + testutil.RedisURL(), "EVP_REDIS_PREFIX=" + prefix, "EVP_STREAM=" + prefix + "events",
		"CONSUMER_GROUP=" + prefix + "group", "EVP_CLAIM_IDLE=2s", "EVP_BUFFER_SYNC=normal", "EVP_STORE_SYNC=normal"}
	apiPort := freePort(t)
	api := startProcWith(t, dir, apiPort, []string{"api"}, env)
	var workers []*proc
	for i := 1; i <= 3; i++ {
		workers = append(workers, startProcWith(t, dir, freePort(t), []string{"worker"}, append(env, fmt.Sprintf("CONSUMER_NAME=w%d", i))))
	}

	cmd := exec.Command(evpBinary(t), "apikey", "create", "--name", "scaled")
	cmd.Env = append(os.Environ(), "EVP_DATA_DIR="+dir)
	keyOut, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(keyOut))

	o := &outcome{accepted: map[string]bool{}, uncertain: map[string]bool{}}
	apiURL := api.url
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for n := 0; ctx.Err() == nil; n++ {
				ids := make([]string, 50)
				for i := range ids {
					ids[i] = fmt.Sprintf("c%d-n%d-i%d", c, n, i)
				}
				status, err := send(client, apiURL, key, ids)
				o.mu.Lock()
				for _, id := range ids {
					switch {
					case err == nil && status == 202:
						o.accepted[id] = true
					case err != nil || status >= 500:
						o.uncertain[id] = true
					}
				}
				o.mu.Unlock()
				if err != nil || status != 202 {
					time.Sleep(20 * time.Millisecond) // the API is down or refusing: retry soon
				}
			}
		}()
	}
	accepted := func() int {
		o.mu.Lock()
		defer o.mu.Unlock()
		return len(o.accepted)
	}
	waitAccepted := func(n int) {
		deadline := time.Now().Add(120 * time.Second)
		for accepted() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d events accepted within 2 minutes, want %d", accepted(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	waitAccepted(30000)
	if err := workers[1].cmd.Process.Signal(syscall.SIGKILL); err != nil { // w2 dies holding entries
		t.Fatal(err)
	}
	waitAccepted(60000)
	api.cmd.Process.Signal(syscall.SIGKILL) // with requests in flight; clients see errors and retry
	<-api.done
	api.done <- nil
	api = startProcWith(t, dir, apiPort, []string{"api"}, env) // same port, so clients find it again
	waitAccepted(110000)
	stop()
	wg.Wait()
	t.Logf("accepted %d events; %d more sent without a definite answer", len(o.accepted), len(o.uncertain))

	// The stream drains: w1 and w3 claim what w2 held after EVP_CLAIM_IDLE.
	deadline := time.Now().Add(90 * time.Second)
	for {
		req, _ := http.NewRequest("GET", api.url+"/api/metrics", nil)
		req.Header.Set("x-api-key", key)
		resp, err := http.DefaultClient.Do(req)
		var m struct {
			Data struct {
				Queue struct {
					StreamLength    int64 `json:"streamLength"`
					PendingMessages int64 `json:"pendingMessages"`
				} `json:"queue"`
			} `json:"data"`
		}
		if err == nil {
			derr := json.NewDecoder(resp.Body).Decode(&m)
			resp.Body.Close()
			if derr == nil && m.Data.Queue.StreamLength == 0 && m.Data.Queue.PendingMessages == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream not drained: %+v (%v)", m.Data.Queue, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, p := range append(workers, api) {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}

	checkStored(t, dir, o)
}
