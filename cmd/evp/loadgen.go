package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	lg "github.com/evp-dev/evp/internal/loadgen"
)

const loadgenUsage = `Usage: evp loadgen --url URL --key KEY [flags]

Drives realistic event traffic at a running evp, shows live progress on stderr and prints a
report (a table, or JSON with --json). Open loop at a fixed rate with --rate (latency counted
from each scheduled start), or a closed loop of --concurrency connections at full speed.
After sending it waits until the store holds every accepted event and reports end-to-end
events/s and the processing lag. The server's CPU and peak RSS are read from /proc when it
runs on this machine (its PID is found from the URL's port, or give --pid).

Exit code: 0 done, 1 no request succeeded or the store did not catch up in time, 2 bad usage.

Flags:
`

func loadgen(args []string, stdout, stderr io.Writer) int {
	cfg := lg.Defaults()
	fs := flag.NewFlagSet("evp loadgen", flag.ContinueOnError)
	fs.StringVar(&cfg.URL, "url", cfg.URL, "base URL of the evp server")
	fs.StringVar(&cfg.Key, "key", "", "API key (x-api-key), from: evp apikey create --name loadgen")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop: events per second (requests per second = rate / batch)")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "closed loop: connections sending back to back (used without --rate)")
	fs.IntVar(&cfg.MaxInflight, "max-inflight", cfg.MaxInflight, "open loop: most requests outstanding; starts beyond it count as missed")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long to send")
	fs.Int64Var(&cfg.Count, "count", 0, "events to send (without --duration: until they are sent)")
	fs.IntVar(&cfg.Batch, "batch", cfg.Batch, "events per request: 1 posts /api/v1/events, more /api/v1/events/batch")
	fs.IntVar(&cfg.Users, "users", cfg.Users, "distinct userIds")
	fs.IntVar(&cfg.Sessions, "sessions", cfg.Sessions, "distinct sessionIds")
	fs.IntVar(&cfg.PayloadBytes, "payload-bytes", cfg.PayloadBytes, "size of each event's payload object in bytes (0: no payload; at most 8 MiB)")
	fs.Float64Var(&cfg.DupRatio, "dup-ratio", cfg.DupRatio, "share of events that repeat an earlier eventId, 0 to 1")
	fs.BoolVar(&cfg.Gzip, "gzip", false, "send gzip-compressed bodies (Content-Encoding: gzip)")
	fs.BoolVar(&cfg.Segment, "segment", false, "send Segment track messages to /v1/batch (/v1/track with --batch 1), as Segment's libraries do")
	fs.DurationVar(&cfg.Spread, "spread", 0, "stamp each event at a random time over this much before now, as a backfill does (0: now)")
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	fs.BoolVar(&cfg.WaitProcessed, "wait-processed", cfg.WaitProcessed, "after sending, wait until the store holds every accepted event")
	fs.DurationVar(&cfg.WaitTimeout, "wait-timeout", cfg.WaitTimeout, "longest wait for the store")
	fs.IntVar(&cfg.PID, "pid", 0, "server process to sample for CPU and RSS (default: the one listening on the URL's port)")
	fs.DurationVar(&cfg.RequestTimeout, "timeout", cfg.RequestTimeout, "timeout of one request")
	quiet := fs.Bool("quiet", false, "no live progress")
	fs.BoolVar(&cfg.NetHTTP, "net-http", false, "send with Go's net/http client instead of the lean built-in one (https always uses net/http)")
	cpuProfile := fs.String("cpuprofile", "", "write the load generator's own CPU profile to this file")
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, loadgenUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "evp loadgen: %v (see evp loadgen --help)\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "evp loadgen: unexpected arguments %q\n", fs.Args())
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["rate"] && set["concurrency"] {
		fmt.Fprintln(stderr, "evp loadgen: give --rate (open loop) or --concurrency (closed loop), not both")
		return 2
	}
	if set["rate"] && cfg.Rate <= 0 {
		fmt.Fprintf(stderr, "evp loadgen: invalid --rate=%v: must be above 0\n", cfg.Rate)
		return 2
	}
	if set["count"] && !set["duration"] {
		cfg.Duration = 0 // until --count events were sent
	}
	if !*quiet {
		cfg.Progress = stderr
		if f, ok := stderr.(*os.File); ok {
			cfg.ProgressTTY = isTerminal(f)
			if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil {
				cfg.ProgressWidth = int(ws.Col)
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "evp loadgen: %v\n", err)
		return 2
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "evp loadgen: %v\n", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "evp loadgen: %v\n", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := lg.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "evp loadgen: %v\n", err)
		return 1
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "evp loadgen: write the report: %v\n", err)
		return 1
	}
	if rep.Requests.OK == 0 || (rep.EndToEnd.Measured && !rep.EndToEnd.Reached) {
		return 1
	}
	return 0
}

// noopBody is the no-op server's answer: the shape of evp's single-event answer.
var noopBody = []byte(`{"success":true,"data":{"accepted":true,"duplicate":false}}` + "\n")

var noopNotFound = []byte(`{"success":false,"error":{"code":"NOT_FOUND","message":"the no-op server answers only POST"}}` + "\n")

// noopServer is the hidden `evp noop-server` command: a Go net/http server that reads each
// POST body and answers 202 without doing anything, the ceiling this machine can serve at
// all, for benchmarks.
func noopServer(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("evp noop-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 3902, "HTTP port")
	host := fs.String("host", "127.0.0.1", "listen address")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *port < 0 || *port > 65535 || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "evp noop-server: invalid --port=%d\n", *port)
		return 2
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintf(stderr, "evp noop-server: %v\n", err)
		return 2
	}
	srv := &http.Server{Handler: http.HandlerFunc(noopHandler), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(stderr, "evp noop-server listening on %s\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "evp noop-server: %v\n", err)
		return 1
	}
	return 0
}

func noopHandler(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if r.Method != http.MethodPost {
		h.Set("Content-Length", strconv.Itoa(len(noopNotFound)))
		w.WriteHeader(http.StatusNotFound)
		w.Write(noopNotFound)
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	h.Set("Content-Length", strconv.Itoa(len(noopBody)))
	w.WriteHeader(http.StatusAccepted)
	w.Write(noopBody)
}
