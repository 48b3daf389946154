package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
)

const exportUsage = `Usage: evp export --url URL --key KEY [filters] [--format ndjson|csv] [-o FILE]

Downloads the stored events that match the filters from a running evp
(GET /api/v1/events/export), newest first: NDJSON has one event per line, CSV a header row
and a row per event. They go to standard output, or with -o to FILE, which appears only
when the export is whole (it is written under a temporary name and renamed at the end).
On a terminal, progress is shown on stderr; a summary line ends every export.

The key is an API key that is not ingest-only (evp apikey create --name export), or a
session token (sent as Authorization: Bearer). Without --key, EVP_API_KEY is read.

Exit code: 0 done, 1 failure while running (the server answered an error, the transfer was
cut off, the output could not be written, or Ctrl-C), 2 bad usage (a server 400 too).

Flags:
`

// exportRanges are the presets of --range, as the server's timeRange takes them.
var exportRanges = []string{"15m", "1h", "24h", "7d"}

// exportPropMax is the most --prop conditions the server takes.
const exportPropMax = 5

// exportJob is one `evp export`, its flags read and checked.
type exportJob struct {
	endpoint string // the export route's full URL with its query
	key      string
	csv      bool
	output   string // "" for standard output
}

// stringsFlag is a repeatable flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ", ") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// isTerminal reports whether w is a terminal (where a progress line may redraw itself).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

func export(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	job, code, ok := parseExport(args, getenv, stdout, stderr)
	if !ok {
		return code
	}
	tty := isTerminal(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	st, err := job.run(ctx, stdout, stderr, tty)
	if err != nil {
		fmt.Fprintf(stderr, "evp export: %v\n", err)
		var se *serverError
		if errors.As(err, &se) && se.status == http.StatusBadRequest {
			return 2
		}
		var ue *usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	fmt.Fprintf(stderr, "exported %d events (%s) in %s, %.0f events/s\n", st.events, fmtBytes(st.bytes), fmtElapsed(st.elapsed), st.rate())
	return 0
}

// parseExport reads the flags; ok is false when the command must end with code.
func parseExport(args []string, getenv func(string) string, stdout, stderr io.Writer) (job *exportJob, code int, ok bool) {
	fs := flag.NewFlagSet("evp export", flag.ContinueOnError)
	base := fs.String("url", "http://localhost:3001", "base `URL` of the evp server")
	key := fs.String("key", "", "API `KEY` (x-api-key) or session token (default: $EVP_API_KEY)")
	format := fs.String("format", "ndjson", "ndjson or csv")
	rng := fs.String("range", "", "only events of the last `RANGE`: 15m, 1h, 24h or 7d (instead of --from/--to)")
	from := fs.String("from", "", "only events at or after this RFC 3339 `TIME`, like 2026-01-02T15:04:05Z")
	to := fs.String("to", "", "only events before this RFC 3339 `TIME`")
	eventType := fs.String("type", "", "only events of this `TYPE` (eventType)")
	userID := fs.String("user", "", "only events of the user with this `ID` (userId)")
	sessionID := fs.String("session", "", "only events of the session with this `ID` (sessionId)")
	var props stringsFlag
	fs.Var(&props, "prop", "only events whose property `FIELD.PATH:VALUE` holds, like metadata.page:/home (repeatable, up to 5; FIELD is metadata, payload or properties)")
	output := fs.String("o", "", "write to `FILE` instead of standard output (only when the export is whole)")
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, exportUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil, 0, false
		}
		fmt.Fprintf(stderr, "evp export: %v (see evp export --help)\n", err)
		return nil, 2, false
	}
	bad := func(format string, a ...any) (*exportJob, int, bool) {
		fmt.Fprintf(stderr, "evp export: "+format+"\n", a...)
		return nil, 2, false
	}
	if fs.NArg() > 0 {
		return bad("unexpected arguments %q", fs.Args())
	}
	u, err := url.Parse(*base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("invalid --url=%q: must be an http(s) URL like http://localhost:3001", *base)
	}
	if *key == "" {
		*key = getenv("EVP_API_KEY")
	}
	if *key == "" {
		return bad("needs an API key: --key KEY or EVP_API_KEY (make one with: evp apikey create --name export)")
	}
	if *format != "ndjson" && *format != "csv" {
		return bad("invalid --format=%q: must be ndjson or csv", *format)
	}
	q := url.Values{"format": {*format}}
	if *rng != "" {
		if !contains(exportRanges, *rng) {
			return bad("invalid --range=%q: must be one of %s", *rng, strings.Join(exportRanges, ", "))
		}
		if *from != "" || *to != "" {
			return bad("give --range or --from/--to, not both")
		}
		q.Set("timeRange", *rng)
	}
	var times [2]time.Time
	for i, f := range []struct{ name, value, param string }{{"from", *from, "from"}, {"to", *to, "to"}} {
		if f.value == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, f.value)
		if err != nil {
			return bad("invalid --%s=%q: must be an RFC 3339 time, like 2026-01-02T15:04:05Z", f.name, f.value)
		}
		times[i] = t
		q.Set(f.param, f.value)
	}
	if !times[0].IsZero() && !times[1].IsZero() && !times[1].After(times[0]) {
		return bad("invalid --to=%q: must be after --from", *to)
	}
	for _, f := range []struct{ value, param string }{{*eventType, "eventType"}, {*userID, "userId"}, {*sessionID, "sessionId"}} {
		if f.value != "" {
			q.Set(f.param, f.value)
		}
	}
	if len(props) > exportPropMax {
		return bad("too many --prop: at most %d", exportPropMax)
	}
	for _, p := range props {
		path, _, found := strings.Cut(p, ":")
		field, _, dotted := strings.Cut(path, ".")
		if !found || !dotted || !contains([]string{"metadata", "payload", "properties"}, field) {
			return bad("invalid --prop=%q: must be FIELD.PATH:VALUE with FIELD metadata, payload or properties, like metadata.page:/home", p)
		}
		q.Add("prop", p)
	}
	if *output == "-" {
		*output = ""
	}
	if *output != "" {
		if fi, err := os.Stat(*output); err == nil && fi.IsDir() {
			return bad("invalid -o=%q: is a directory", *output)
		}
	}
	return &exportJob{
		endpoint: strings.TrimRight(u.String(), "/") + "/api/v1/events/export?" + q.Encode(),
		key:      *key,
		csv:      *format == "csv",
		output:   *output,
	}, 0, true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// usageError is a failure of the command line found while running, such as an output
// file that cannot be created: exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// serverError is the server's answer to a request it refused.
type serverError struct {
	status     int
	code       string
	message    string
	details    []string
	retryAfter string
}

func (e *serverError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the server answered %d", e.status)
	if e.code != "" {
		fmt.Fprintf(&b, " %s", e.code)
	}
	fmt.Fprintf(&b, ": %s", e.message)
	if e.retryAfter != "" {
		fmt.Fprintf(&b, " (retry after %s s)", e.retryAfter)
	}
	for _, d := range e.details {
		fmt.Fprintf(&b, "\n  %s", d)
	}
	return b.String()
}

// readServerError reads an error answer: evp's envelope, or whatever else answered.
func readServerError(resp *http.Response) *serverError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &serverError{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	var env struct {
		Error *struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Details json.RawMessage `json:"details"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Error == nil {
		e.message = strings.TrimSpace(string(body))
		if len(e.message) > 200 {
			e.message = e.message[:200] + "..."
		}
		if e.message == "" {
			e.message = http.StatusText(resp.StatusCode)
		}
		return e
	}
	e.code, e.message = env.Error.Code, env.Error.Message
	if len(env.Error.Details) == 0 || string(env.Error.Details) == "null" {
		return e
	}
	var fields []struct {
		Path   string `json:"path"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(env.Error.Details, &fields); err == nil {
		for _, f := range fields {
			e.details = append(e.details, f.Path+": "+f.Reason)
		}
		return e
	}
	var compact bytes.Buffer
	if json.Compact(&compact, env.Error.Details) == nil {
		e.details = append(e.details, compact.String())
	}
	return e
}

// exportStats say how much an export wrote.
type exportStats struct {
	events, bytes int64
	elapsed       time.Duration
}

func (s exportStats) rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.events) / s.elapsed.Seconds()
}

// run downloads the export to standard output or the output file, showing progress on
// stderr when tty is set. It ends when the transfer is complete, fails or ctx is done; the
// output file exists only when it returns no error.
func (j *exportJob) run(ctx context.Context, stdout, stderr io.Writer, tty bool) (exportStats, error) {
	if j.output == "" {
		return j.download(ctx, stdout, stderr, tty)
	}
	tmp, err := os.CreateTemp(filepath.Dir(j.output), "."+filepath.Base(j.output)+".*.part")
	if err != nil {
		return exportStats{}, &usageError{fmt.Errorf("create the output file: %w", err)}
	}
	st, err := j.download(ctx, tmp, stderr, tty)
	if err == nil {
		// Whole on disk before it takes the name.
		if err = tmp.Sync(); err == nil {
			err = tmp.Close()
		}
		if err == nil {
			err = os.Rename(tmp.Name(), j.output)
		}
		if err != nil {
			err = fmt.Errorf("write %s: %w", j.output, err)
		}
	}
	if err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		var se *serverError
		if !errors.As(err, &se) {
			err = fmt.Errorf("%w; %s not written", err, j.output)
		}
	}
	return st, err
}

// download requests the export and copies it to w.
func (j *exportJob) download(ctx context.Context, w io.Writer, stderr io.Writer, tty bool) (exportStats, error) {
	var st exportStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.endpoint, nil)
	if err != nil {
		return st, err
	}
	if looksLikeSessionToken(j.key) {
		req.Header.Set("Authorization", "Bearer "+j.key)
	} else {
		req.Header.Set("x-api-key", j.key)
	}
	start := time.Now()
	resp, err := exportClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return st, errors.New("interrupted before the export started")
		}
		return st, fmt.Errorf("request the export: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, readServerError(resp)
	}
	want := "application/x-ndjson"
	if j.csv {
		want = "text/csv"
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != want {
		return st, fmt.Errorf("the answer is not an export (Content-Type %q, want %s): is the --url an evp with GET /api/v1/events/export?",
			resp.Header.Get("Content-Type"), want)
	}
	c := &exportCounter{w: w, csv: j.csv}
	stop := showProgress(stderr, tty, c, start)
	_, err = io.Copy(c, resp.Body)
	stop()
	st = c.stats(time.Since(start))
	switch {
	case c.werr != nil:
		return st, fmt.Errorf("write the export: %w", c.werr)
	case ctx.Err() != nil:
		return st, fmt.Errorf("interrupted after %d events: the export is incomplete", st.events)
	case err != nil:
		return st, fmt.Errorf("the export is incomplete: the transfer broke off after %d events (%s): %w", st.events, fmtBytes(st.bytes), err)
	case st.bytes > 0 && c.last != '\n':
		return st, fmt.Errorf("the export is incomplete: it ends inside a line after %d events (%s)", st.events, fmtBytes(st.bytes))
	}
	return st, nil
}

// exportClient sends the key to the --url's host only: a redirect elsewhere is refused.
var exportClient = &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if req.URL.Host != via[0].URL.Host {
		return fmt.Errorf("redirected to another host (%s); give that URL as --url", req.URL.Host)
	}
	return nil
}}

// looksLikeSessionToken tells a session token (a JWT: three base64url parts, the first a
// JSON object) from an API key.
func looksLikeSessionToken(key string) bool {
	return strings.HasPrefix(key, "eyJ") && strings.Count(key, ".") == 2
}

// exportCounter writes through to w and counts the bytes and the events written: lines of
// NDJSON, or CSV records (a newline inside a quoted field is part of the field) after the
// header. Write is called by one goroutine; stats may be read by another at any time.
type exportCounter struct {
	w       io.Writer
	csv     bool
	inQuote bool
	last    byte  // the last byte written
	werr    error // the first write error
	records atomic.Int64
	bytes   atomic.Int64
}

func (c *exportCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil && c.werr == nil {
		c.werr = err
	}
	p = p[:n]
	if n > 0 {
		c.last = p[n-1]
	}
	if !c.csv {
		c.records.Add(int64(bytes.Count(p, []byte{'\n'})))
	} else {
		records := 0
		for {
			i := bytes.IndexAny(p, "\"\n")
			if i < 0 {
				break
			}
			if p[i] == '"' {
				c.inQuote = !c.inQuote // a quote inside a quoted field is doubled: two toggles
			} else if !c.inQuote {
				records++
			}
			p = p[i+1:]
		}
		c.records.Add(int64(records))
	}
	c.bytes.Add(int64(n))
	return n, err
}

func (c *exportCounter) stats(elapsed time.Duration) exportStats {
	events := c.records.Load()
	if c.csv {
		events = max(events-1, 0) // the header
	}
	return exportStats{events: events, bytes: c.bytes.Load(), elapsed: elapsed}
}

// exportProgressEvery is how often the progress line is updated.
var exportProgressEvery = 250 * time.Millisecond

// showProgress updates a progress line on stderr a few times a second when tty is set,
// until the returned function is called; that clears the line.
func showProgress(stderr io.Writer, tty bool, c *exportCounter, start time.Time) (stop func()) {
	return progressLine(stderr, nil, tty, func() string {
		st := c.stats(time.Since(start))
		return fmt.Sprintf("exporting: %d events, %s, %.0f events/s", st.events, fmtBytes(st.bytes), st.rate())
	})
}

// progressLine writes line() over itself on stderr every exportProgressEvery when tty is
// set, until the returned function is called; that clears it. mu, when set, is held for
// each write (other messages go to the same stderr).
func progressLine(stderr io.Writer, mu *sync.Mutex, tty bool, line func() string) (stop func()) {
	if !tty {
		return func() {}
	}
	write := func(text string) {
		if mu != nil {
			mu.Lock()
			defer mu.Unlock()
		}
		fmt.Fprint(stderr, text)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(exportProgressEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				write("\r\033[K")
				return
			case <-tick.C:
				write("\r" + line() + "\033[K")
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// fmtBytes writes n bytes in decimal units: 950 B, 12.3 kB, 4.5 MB, 1.2 GB.
func fmtBytes(n int64) string {
	switch {
	case n < 1000:
		return strconv.FormatInt(n, 10) + " B"
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1f GB", float64(n)/1e9)
}

// fmtElapsed rounds d for a summary: 0.042s, 3.2s, 2m5.3s.
func fmtElapsed(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.3fs", d.Seconds())
	}
	return d.Round(100 * time.Millisecond).String()
}
