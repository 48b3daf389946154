// Command bench runs evp's standard load scenarios on this machine and prints one table:
// each scenario several times against a fresh evp process driven by `evp loadgen`, with
// medians. The no-op HTTP server (`evp noop-server`) driven with the same settings is the
// machine's ceiling for single-event requests.
//
//	go run ./tools/bench [-runs 3] [-duration 30s] [-only embedded-batch]
//
// The hostile scenarios check a bound under attack rather than measure throughput; they run
// only when -only names them, and report the server's peak RSS (VmHWM) and, where a
// directory is watched, the peak size of that directory (du -sb every 100 ms):
//
//	go run ./tools/bench -runs 1 -only hostile-large-bodies   (16 clients, 5.2 MB events, 20 s)
//	go run ./tools/bench -runs 1 -only hostile-buffer-bound   (EVP_BUFFER_MAX_BYTES=64MiB, batches at full speed)
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
)

type scenario struct {
	name    string
	server  string   // "evp" or "noop"
	env     []string // extra environment for the server
	redis   bool     // needs Redis (REDIS_URL)
	loadgen []string // loadgen flags besides --url, --key, --duration
	// hostile scenarios run only when -only names them, for their duration (not -duration).
	hostile  bool
	duration time.Duration
	watch    string // a directory of the data directory whose peak size is reported
}

// report is the part of `evp loadgen --json` the table uses.
type report struct {
	Throughput struct {
		AcceptedEventsPerSec float64 `json:"acceptedEventsPerSec"`
		RequestsPerSec       float64 `json:"requestsPerSec"`
	} `json:"throughput"`
	Requests struct {
		Missed int64 `json:"missed"`
		Failed int64 `json:"failed"`
	} `json:"requests"`
	RequestsByStatus map[string]int64 `json:"requestsByStatus"`
	LatencyMs        struct {
		P50 float64 `json:"p50"`
		P99 float64 `json:"p99"`
	} `json:"latencyMs"`
	EndToEnd struct {
		Measured     bool    `json:"measured"`
		Reached      bool    `json:"reached"`
		EventsPerSec float64 `json:"eventsPerSec"`
		LagSeconds   float64 `json:"lagSeconds"`
		FirstMinute  float64 `json:"firstMinuteEventsPerSec"`
		LastMinute   float64 `json:"lastMinuteEventsPerSec"`
	} `json:"endToEnd"`
	Server struct {
		SendAvgCores float64 `json:"sendAvgCores"`
		PeakRssMB    float64 `json:"peakRssMB"`
	} `json:"server"`
	watchPeak int64 // bytes: the watched directory's largest size seen
}

func main() {
	runs := flag.Int("runs", 3, "runs of each scenario (the table shows medians)")
	duration := flag.Duration("duration", 30*time.Second, "sending time of each run")
	only := flag.String("only", "", "run only scenarios whose name contains this")
	bin := flag.String("evp", "bin/evp", "the evp binary (built by make build)")
	redisURL := flag.String("redis", envOr("REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis for the Redis Streams scenarios")
	flag.Parse()

	scenarios := []scenario{
		{name: "embedded-batch100", server: "evp", loadgen: []string{"--batch", "100", "--concurrency", "32"}},
		{name: "embedded-segment-batch100", server: "evp", loadgen: []string{"--segment", "--batch", "100", "--concurrency", "32"}},
		// A backfill: 1000-event batches of events stamped over the last 24 hours, as fast as
		// the API takes them: the store's backfill bar (BENCHMARKS.md).
		{name: "embedded-backfill-24h", server: "evp", duration: 120 * time.Second,
			loadgen: []string{"--batch", "1000", "--concurrency", "8", "--spread", "24h", "--dup-ratio", "0", "--wait-timeout", "600s"}},
		{name: "embedded-single", server: "evp", loadgen: []string{"--batch", "1", "--concurrency", "128"}},
		{name: "noop-single", server: "noop", loadgen: []string{"--batch", "1", "--concurrency", "128"}},
		{name: "embedded-single-open50k", server: "evp", loadgen: []string{"--batch", "1", "--rate", "50000", "--max-inflight", "1024"}},
		{name: "redis-batch100", server: "evp", redis: true, loadgen: []string{"--batch", "100", "--concurrency", "32"}},
		{name: "redis-single", server: "evp", redis: true, loadgen: []string{"--batch", "1", "--concurrency", "128"}},
		{name: "hostile-large-bodies", server: "evp", hostile: true, duration: 20 * time.Second,
			loadgen: []string{"--batch", "1", "--concurrency", "16", "--payload-bytes", "5242000", "--wait-timeout", "300s"}},
		{name: "hostile-buffer-bound", server: "evp", hostile: true, duration: 30 * time.Second, watch: "buffer",
			env: []string{"EVP_BUFFER_MAX_BYTES=64MiB"}, loadgen: []string{"--batch", "100", "--concurrency", "32", "--wait-processed=false"}},
	}
	fmt.Printf("evp benchmark: %d CPUs, %s, Go %s, %d run(s) of %s per scenario\n", runtime.NumCPU(), memTotal(), runtime.Version(), *runs, *duration)
	results := map[string][]report{}
	var order []string
	for _, sc := range scenarios {
		if *only != "" && !strings.Contains(sc.name, *only) || sc.hostile && *only == "" {
			continue
		}
		if sc.redis && !redisUp(*redisURL) {
			fmt.Printf("%s: skipped, Redis at %s is unreachable\n", sc.name, *redisURL)
			continue
		}
		order = append(order, sc.name)
		for i := 0; i < *runs; i++ {
			d := *duration
			if sc.duration > 0 {
				d = sc.duration
			}
			r, err := runOnce(*bin, sc, d, *redisURL)
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s run %d: %v\n", sc.name, i+1, err)
				os.Exit(1)
			}
			fmt.Printf("%s run %d: %.0f events/s accepted, %.0f end to end, p99 %.1f ms\n", sc.name, i+1,
				r.Throughput.AcceptedEventsPerSec, r.EndToEnd.EventsPerSec, r.LatencyMs.P99)
			if r.EndToEnd.FirstMinute > 0 {
				fmt.Printf("%s run %d: stored %.0f events/s in the first minute, %.0f in the last\n", sc.name, i+1,
					r.EndToEnd.FirstMinute, r.EndToEnd.LastMinute)
			}
			if sc.hostile {
				fmt.Printf("%s run %d: answers by status %v, server peak RSS (VmHWM) %.1f MB", sc.name, i+1, r.RequestsByStatus, r.Server.PeakRssMB)
				if sc.watch != "" {
					fmt.Printf(", %s peak %d bytes (%.1f MiB)", sc.watch, r.watchPeak, float64(r.watchPeak)/(1<<20))
				}
				fmt.Println()
			}
			results[sc.name] = append(results[sc.name], r)
		}
	}
	printTable(order, results)
}

func printTable(order []string, results map[string][]report) {
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\taccepted ev/s\tend-to-end ev/s\tlag s\tp50 ms\tp99 ms\tmissed\tserver cores\tpeak RSS MB\tof no-op\t")
	noop := median(results["noop-single"], func(r report) float64 { return r.Throughput.AcceptedEventsPerSec })
	for _, name := range order {
		rs := results[name]
		m := func(f func(report) float64) float64 { return median(rs, f) }
		acc := m(func(r report) float64 { return r.Throughput.AcceptedEventsPerSec })
		e2e, lag := "-", "-"
		if rs[0].EndToEnd.Measured {
			e2e = fmt.Sprintf("%.0f", m(func(r report) float64 { return r.EndToEnd.EventsPerSec }))
			lag = fmt.Sprintf("%.2f", m(func(r report) float64 { return r.EndToEnd.LagSeconds }))
		}
		ratio := "-"
		if noop > 0 && strings.HasSuffix(name, "-single") && name != "noop-single" {
			ratio = fmt.Sprintf("%.0f%%", 100*acc/noop)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%.2f\t%.2f\t%.0f\t%.2f\t%.0f\t%s\t\n", name, acc, e2e, lag,
			m(func(r report) float64 { return r.LatencyMs.P50 }), m(func(r report) float64 { return r.LatencyMs.P99 }),
			m(func(r report) float64 { return float64(r.Requests.Missed) }),
			m(func(r report) float64 { return r.Server.SendAvgCores }), m(func(r report) float64 { return r.Server.PeakRssMB }), ratio)
	}
	tw.Flush()
	fmt.Println("\nMedians of the runs. The load generator runs on the same machine and shares its CPUs.")
}

func median(rs []report, f func(report) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// runOnce starts a fresh server, drives it with evp loadgen and returns the report.
func runOnce(bin string, sc scenario, duration time.Duration, redisURL string) (report, error) {
	dir, err := os.MkdirTemp("", "evp-bench-")
	if err != nil {
		return report{}, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	port := freePort()
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	var cmd *exec.Cmd
	if sc.server == "noop" {
		cmd = exec.Command(bin, "noop-server", "--port", strconv.Itoa(port))
	} else {
		cmd = exec.Command(bin)
		cmd.Env = append(os.Environ(), "EVP_DATA_DIR="+dir, "PORT="+strconv.Itoa(port), "SERVER_HOST=127.0.0.1", "LOG_LEVEL=warn")
		cmd.Env = append(cmd.Env, sc.env...)
		if sc.redis {
			prefix := fmt.Sprintf("evp-bench-%d-%d:", os.Getpid(), time.Now().UnixNano())
			cmd.Env = append(cmd.Env, "REDIS_URL="+redisURL, "EVP_STREAM="+prefix+"events_stream", "EVP_REDIS_PREFIX="+prefix)
			defer cleanRedis(redisURL, prefix)
		}
	}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return report{}, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	if err := waitReady(url, sc.server == "noop"); err != nil {
		return report{}, fmt.Errorf("%v\n%s", err, logs.String())
	}
	key := "none"
	if sc.server == "evp" {
		out, err := exec.Command(bin, "apikey", "create", "--name", "bench", "--data-dir", dir).Output()
		if err != nil {
			return report{}, fmt.Errorf("apikey create: %v", err)
		}
		key = strings.TrimSpace(string(out))
	}
	var watchPeak func() int64
	if sc.watch != "" {
		stop := make(chan struct{})
		defer close(stop)
		watchPeak = watchSize(filepath.Join(dir, sc.watch), stop)
	}
	args := append([]string{"loadgen", "--url", url, "--key", key, "--duration", duration.String(),
		"--json", "--quiet", "--dup-ratio", "0", "--pid", strconv.Itoa(cmd.Process.Pid)}, sc.loadgen...)
	if sc.server == "noop" {
		args = append(args, "--wait-processed=false")
	}
	lg := exec.Command(bin, args...)
	var out, errOut bytes.Buffer
	lg.Stdout, lg.Stderr = &out, &errOut
	lgErr := lg.Run()
	var r report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return report{}, fmt.Errorf("loadgen: %v (%v)\n%s", err, lgErr, errOut.String())
	}
	if watchPeak != nil {
		r.watchPeak = watchPeak()
	}
	return r, nil
}

// watchSize measures dir every 100 ms, as du -sb does, until stop is closed; the function
// it returns reports the largest size seen so far.
func watchSize(dir string, stop <-chan struct{}) func() int64 {
	var peak atomic.Int64
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if n := dirSize(dir); n > peak.Load() {
				peak.Store(n)
			}
		}
	}()
	return func() int64 { return max(peak.Load(), dirSize(dir)) }
}

// dirSize is the apparent size of dir and what is in it (du -sb).
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return nil // a file deleted meanwhile
		}
		if info, err := d.Info(); err == nil {
			n += info.Size()
		}
		return nil
	})
	return n
}

func waitReady(url string, noop bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if noop {
			if c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://")); err == nil {
				_ = c.Close()
				return nil
			}
		} else if resp, err := http.Get(url + "/api/ready"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("server at %s not ready within 30 s", url)
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func redisUp(url string) bool {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return false
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.Ping(ctx).Err() == nil
}

func cleanRedis(url, prefix string) {
	opts, _ := redis.ParseURL(url)
	c := redis.NewClient(opts)
	defer c.Close()
	ctx := context.Background()
	// A run leaves one dedup key per event (millions): unlink them a thousand at a time.
	var keys []string
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		if keys = append(keys, iter.Val()); len(keys) == 1000 {
			c.Unlink(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		c.Unlink(ctx, keys...)
	}
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "memory unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return fmt.Sprintf("%.0f GiB RAM", kb/1024/1024)
		}
	}
	return "memory unknown"
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
