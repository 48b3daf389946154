package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/testutil"
)

// TestHelperBusyProcess is not a test: run by TestRunWhenTheServerExitsMidRun as a process
// that has used some CPU and then waits to be killed.
func TestHelperBusyProcess(t *testing.T) {
	if os.Getenv("EVP_LOADGEN_HELPER") != "1" {
		return
	}
	for selfCPU() < 100*time.Millisecond {
	}
	fmt.Println("ready")
	time.Sleep(time.Hour)
}

// A server process that exits while the load runs: the report's CPU figures cover its life
// until then, never a negative count, and the report says that sampling stopped early.
func TestRunWhenTheServerExitsMidRun(t *testing.T) {
	testutil.SkipShort(t, "starts a helper process")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperBusyProcess$")
	cmd.Env = append(os.Environ(), "EVP_LOADGEN_HELPER=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	exit := func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) }
	t.Cleanup(exit)
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("helper process: %q, %v", line, err)
	}

	var mu sync.Mutex
	posts := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.NotFound(w, r) // no /api/metrics: no end-to-end wait
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		posts++
		if posts == 3 {
			exit() // the process sampled as the server exits and is reaped
		}
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"success":true,"data":{"accepted":10,"duplicates":0}}`)
	}))
	defer srv.Close()
	cfg := testConfig(srv.URL)
	cfg.Concurrency, cfg.Batch, cfg.Count, cfg.PID = 1, 10, 100, cmd.Process.Pid
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Server
	if !s.Measured || s.SendCPUSeconds < 0 || s.CPUSeconds < 0 || s.SendAvgCores < 0 || s.Error == "" {
		t.Errorf("server %+v; want measured, no negative figure, and the sampling error", s)
	}
	var text bytes.Buffer
	_ = rep.WriteText(&text)
	if !strings.Contains(text.String(), "sampling stopped early") || strings.Contains(text.String(), ": -") {
		t.Errorf("text report:\n%s", text.String())
	}
}
