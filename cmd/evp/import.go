package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/evp-dev/evp/internal/event"
)

const importUsage = `Usage: evp import --url URL --key KEY [--strict] [--concurrency N] FILE|-

Loads events, one JSON object per line as evp export writes them (NDJSON), into a running
evp (POST /api/v1/events/import). FILE is read as a stream, "-" is standard input, and a
FILE whose name ends in .gz is read as gzip. Lines are sent in requests of up to 1000
lines or about 4 MiB, several at once (--concurrency). Each line needs its eventId, and
the store keeps each eventId once, so running the same import again is safe. evp counts as
duplicates the ids it accepted within its dedup window (EVP_DEDUP_WINDOW, 10 minutes); an
event imported before that is counted as accepted again, and still stored once.

A line that is not an event is reported on stderr with its line number in FILE and the
reasons (the first 20, then a count). Without --strict it is skipped and the others are
imported; with --strict the import stops at the first request holding such a line (the
requests before it are imported, nothing after it is sent), and requests are sent one at
a time. A 503 or 429 answer is retried after its Retry-After. On a terminal, progress is
shown on stderr; a summary line ends every import.

The key is an API key that is not ingest-only (evp apikey create --name import), or the
session token of an OPERATOR or ADMIN (sent as Authorization: Bearer). Without --key,
EVP_API_KEY is read.

Exit code: 0 every line imported (or already there), 1 lines rejected (skipped, or the
import stopped with --strict), or a failure while running (the server answered an error,
FILE could not be read, or Ctrl-C, which stops after the requests in flight), 2 bad usage.

Flags:
`

// importMaxLines is the most lines a request holds: the server's limit.
var importMaxLines = event.MaxBatch

// importChunkBytes is the size at which a request is cut, under the server's default body
// limit (EVP_MAX_BODY_BYTES, 5 MiB). A 413 answer lowers it for the rest of the import.
var importChunkBytes int64 = 4 << 20

// importMaxLineBytes is the longest line sent: one longer can fit in no request under the
// server's default body limit, and is reported as a bad line without being sent.
var importMaxLineBytes = 5<<20 - 1

// importRetries is how many times a request answered 503 or 429 is sent again.
const importRetries = 10

// importMaxWait caps a Retry-After.
const importMaxWait = 60 * time.Second

// importListed is how many bad lines are listed; the others are counted.
const importListed = 20

// importStdin is read by `evp import -`.
var importStdin io.Reader = os.Stdin

// importClient is exportClient (the key goes to the --url's host only) with room for the
// connections of --concurrency 32.
var importClient = func() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	return &http.Client{Transport: tr, CheckRedirect: exportClient.CheckRedirect}
}()

// importJob is one `evp import`, its flags read and checked.
type importJob struct {
	endpoint    string // the import route's full URL with its query
	key         string
	strict      bool
	concurrency int
	file        string // "-" for standard input
}

func importCmd(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	job, code, ok := parseImport(args, getenv, stdout, stderr)
	if !ok {
		return code
	}
	tty := isTerminal(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C ends the process at once
	}()
	return job.run(ctx, stderr, tty)
}

// parseImport reads the flags; ok is false when the command must end with code. Flags may
// follow FILE.
func parseImport(args []string, getenv func(string) string, stdout, stderr io.Writer) (job *importJob, code int, ok bool) {
	fs := flag.NewFlagSet("evp import", flag.ContinueOnError)
	base := fs.String("url", "http://localhost:3001", "base `URL` of the evp server")
	key := fs.String("key", "", "API `KEY` (x-api-key) or session token (default: $EVP_API_KEY)")
	strict := fs.Bool("strict", false, "stop at the first request holding a line that is not an event (sends one request at a time)")
	concurrency := fs.Int("concurrency", 4, "requests in flight at once, 1 to 32")
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, importUsage)
				fs.SetOutput(stdout)
				fs.PrintDefaults()
				return nil, 0, false
			}
			fmt.Fprintf(stderr, "evp import: %v (see evp import --help)\n", err)
			return nil, 2, false
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	bad := func(format string, a ...any) (*importJob, int, bool) {
		fmt.Fprintf(stderr, "evp import: "+format+"\n", a...)
		return nil, 2, false
	}
	switch {
	case len(files) == 0:
		return bad("needs a FILE to read, or - for standard input (see evp import --help)")
	case len(files) > 1:
		return bad("unexpected arguments %q: give one FILE", files[1:])
	}
	u, err := url.Parse(*base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("invalid --url=%q: must be an http(s) URL like http://localhost:3001", *base)
	}
	if *key == "" {
		*key = getenv("EVP_API_KEY")
	}
	if *key == "" {
		return bad("needs an API key: --key KEY or EVP_API_KEY (make one with: evp apikey create --name import)")
	}
	if *concurrency < 1 || *concurrency > 32 {
		return bad("invalid --concurrency=%d: must be from 1 to 32", *concurrency)
	}
	if *strict {
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == "concurrency" })
		if set && *concurrency != 1 {
			return bad("--strict sends one request at a time, so that nothing after a bad line is sent: leave out --concurrency")
		}
		*concurrency = 1
	}
	endpoint := strings.TrimRight(u.String(), "/") + "/api/v1/events/import"
	if *strict {
		endpoint += "?strict=true"
	}
	return &importJob{endpoint: endpoint, key: *key, strict: *strict, concurrency: *concurrency, file: files[0]}, 0, true
}

// importChunk is the body of one request: whole lines of the file from line first on.
type importChunk struct {
	body   []byte
	first  int // the file's line number of the body's first line
	lines  int // lines in body, empty ones too
	events int // lines in body that are not empty
	seq    int // order among the chunks sent
}

func (c importChunk) last() int { return c.first + c.lines - 1 }

// badLine is a line of the file that is not an event, and why.
type badLine struct {
	line    int
	reasons []string // "path: reason"
}

// importer is the state of a running import, shared by the reader and the senders.
type importer struct {
	job    *importJob
	stderr io.Writer
	tty    bool
	start  time.Time
	limit  atomic.Int64 // importChunkBytes, lowered by a 413

	read, accepted, duplicates, rejected atomic.Int64
	answered                             atomic.Bool // the server answered a request

	mu       sync.Mutex // guards what follows and writes to stderr
	bad      []badLine  // the first importListed by line number
	failed   error      // the first error that stops the import
	strictAt *importChunk
	done     map[int]int // seq of a chunk answered, not yet in through: its last line
	nextSeq  int         // the first seq not yet in through
	through  int         // every line up to it is imported
}

// errStopped is a chunk not sent because the import is stopping.
var errStopped = errors.New("stopped")

// run imports the file, reports on stderr and returns the exit code.
func (j *importJob) run(ctx context.Context, stderr io.Writer, tty bool) int {
	imp := &importer{job: j, stderr: stderr, tty: tty, start: time.Now(), done: map[int]int{}}
	imp.limit.Store(importChunkBytes)
	src, closeSrc, err := j.open()
	if err != nil {
		fmt.Fprintf(stderr, "evp import: %v\n", err)
		return 2
	}
	defer closeSrc()

	// stop ends the import: no more chunks are sent; ctx (Ctrl-C) does it too.
	stopCtx, stop := context.WithCancel(ctx)
	defer stop()
	work := make(chan importChunk)
	free := make(chan *bytes.Buffer, j.concurrency+1) // bounds the memory: one buffer a chunk
	for range j.concurrency + 1 {
		free <- new(bytes.Buffer)
	}
	var wg sync.WaitGroup
	for range j.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				if stopCtx.Err() == nil { // nothing more is sent once the import stops
					switch err := imp.send(stopCtx, c); {
					case err == nil:
						imp.chunkDone(c)
					case errors.Is(err, errStopped):
						stop()
					default:
						imp.fail(err)
						stop()
					}
				}
				free <- bytes.NewBuffer(c.body[:0])
			}
		}()
	}
	progressDone := imp.showProgress()
	readErr := imp.readChunks(stopCtx, src, work, free, stop)
	close(work)
	wg.Wait()
	progressDone()

	imp.mu.Lock()
	defer imp.mu.Unlock()
	imp.listBadLines()
	failed := imp.failed
	if failed == nil && readErr != nil && !errors.Is(readErr, errStopped) {
		failed = fmt.Errorf("read %s: %w", j.name(), readErr)
	}
	again := "running the same command again is safe: the store keeps each eventId once"
	code := 0
	switch {
	case imp.strictAt != nil:
		c := imp.strictAt
		in := "no line is imported"
		if imp.through > 0 {
			in = fmt.Sprintf("lines 1 to %d are imported", imp.through)
		}
		fmt.Fprintf(stderr, "evp import: stopped (--strict) at the request holding lines %d to %d: %s, nothing from line %d on was sent; fix %s and run the same command again, which is safe: the event ids make importing idempotent\n",
			c.first, c.last(), in, c.first, j.name())
		code = 1
	case failed != nil:
		fmt.Fprintf(stderr, "evp import: %v\n", failed)
		fmt.Fprintf(stderr, "evp import: stopped: %s; %s\n", imp.howFar(), again)
		code = 1
	case ctx.Err() != nil:
		fmt.Fprintf(stderr, "evp import: interrupted after the requests in flight: %s; %s\n", imp.howFar(), again)
		code = 1
	case imp.rejected.Load() > 0:
		code = 1
	}
	elapsed := time.Since(imp.start)
	sent := imp.accepted.Load() + imp.duplicates.Load()
	fmt.Fprintf(stderr, "imported %d events (%d duplicates, %d lines rejected) in %s, %.0f events/s\n",
		imp.accepted.Load(), imp.duplicates.Load(), imp.rejected.Load(), fmtElapsed(elapsed), float64(sent)/max(elapsed.Seconds(), 1e-9))
	return code
}

func (j *importJob) name() string {
	if j.file == "-" {
		return "standard input"
	}
	return j.file
}

// open opens the file, through gzip when its name ends in .gz.
func (j *importJob) open() (io.Reader, func(), error) {
	if j.file == "-" {
		return importStdin, func() {}, nil
	}
	f, err := os.Open(j.file)
	if err != nil {
		return nil, nil, err
	}
	if !strings.HasSuffix(j.file, ".gz") {
		return f, func() { _ = f.Close() }, nil
	}
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 64<<10))
	if err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("read %s: not gzip: %w", j.file, err)
	}
	return zr, func() { _ = zr.Close(); _ = f.Close() }, nil
}

// howFar says which lines are in, for a message after the import stopped.
func (imp *importer) howFar() string {
	if imp.through == 0 {
		return fmt.Sprintf("%d lines read, none known imported", imp.read.Load())
	}
	return fmt.Sprintf("%d lines read, lines 1 to %d imported", imp.read.Load(), imp.through)
}

// readChunks reads the file line by line into chunks and hands them to work, until the
// file ends, ctx is done or the import is stopped (--strict, on a line too long).
func (imp *importer) readChunks(ctx context.Context, src io.Reader, work chan<- importChunk, free chan *bytes.Buffer, stop func()) error {
	br := bufio.NewReaderSize(src, 64<<10)
	seq := 0
	var buf *bytes.Buffer
	select {
	case buf = <-free:
	case <-ctx.Done():
		return errStopped
	}
	c := importChunk{first: 1}
	// emit hands the chunk in buf (its lines up to n bytes) over and takes a new buffer.
	emit := func(n int) error {
		if c.events == 0 {
			buf.Truncate(0)
			return nil
		}
		c.body, c.seq = buf.Bytes()[:n], seq
		seq++
		select {
		case work <- c:
		case <-ctx.Done():
			return errStopped
		}
		select {
		case buf = <-free:
		case <-ctx.Done():
			return errStopped
		}
		buf.Reset()
		return nil
	}
	lineNo := 0
	for {
		if ctx.Err() != nil {
			return errStopped
		}
		start := buf.Len()
		n, tooLong, err := readLine(br, buf, importMaxLineBytes)
		if n == 0 && err != nil {
			if err == io.EOF {
				err = nil
			}
			if err == nil {
				err = emit(buf.Len())
			}
			return err
		}
		lineNo++
		imp.read.Add(1)
		if tooLong {
			buf.Truncate(start)
			buf.WriteByte('\n') // an empty line keeps the server's line numbers
			imp.reject(badLine{lineNo, []string{fmt.Sprintf("is longer than %s, the largest line a request can carry: not sent", fmtBytes(int64(importMaxLineBytes)))}})
			if imp.job.strict {
				c.lines++
				imp.mu.Lock()
				cc := c
				imp.strictAt = &cc
				imp.mu.Unlock()
				stop()
				return errStopped
			}
		}
		empty := len(bytes.TrimSpace(buf.Bytes()[start:])) == 0
		if !empty && int64(buf.Len()) > imp.limit.Load() && c.events > 0 {
			// The line goes into the next chunk.
			line := slices.Clone(buf.Bytes()[start:])
			if err := emit(start); err != nil {
				return err
			}
			c = importChunk{first: lineNo}
			buf.Write(line)
		}
		c.lines++
		if !empty {
			c.events++
		}
		if c.events >= importMaxLines || int64(buf.Len()) >= imp.limit.Load() {
			if err := emit(buf.Len()); err != nil {
				return err
			}
			c = importChunk{first: lineNo + 1}
		}
		if err != nil { // the last line, without a newline
			if err == io.EOF {
				err = nil
			}
			if err == nil {
				err = emit(buf.Len())
			}
			return err
		}
	}
}

// readLine appends the next line of br to buf, ending it with a newline, and returns its
// length as read. A line longer than maxLen is read to its end but not kept whole: tooLong
// is set and buf holds part of it. err is io.EOF at the end of the input.
func readLine(br *bufio.Reader, buf *bytes.Buffer, maxLen int) (n int, tooLong bool, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		n += len(frag)
		if !tooLong {
			if n > maxLen+1 || (n == maxLen+1 && (len(frag) == 0 || frag[len(frag)-1] != '\n')) {
				tooLong = true
			} else {
				buf.Write(frag)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err != nil:
			if n > 0 && !tooLong {
				buf.WriteByte('\n')
			}
			return n, tooLong, err
		}
		return n, tooLong, nil
	}
}

// importAnswer is the data of a 200 answer.
type importAnswer struct {
	Accepted   *int64 `json:"accepted"`
	Duplicates int64  `json:"duplicates"`
	Rejected   []struct {
		Line   int `json:"line"`
		Errors []struct {
			Path   string `json:"path"`
			Reason string `json:"reason"`
		} `json:"errors"`
	} `json:"rejected"`
}

// send posts one chunk, again after a 503 or 429 (or, once the server has answered, a
// broken connection) and in halves after a 413. It returns errStopped when ctx ends
// while it waits to send again, and the error that ends the import otherwise.
func (imp *importer) send(ctx context.Context, c importChunk) error {
	for attempt := 1; ; attempt++ {
		resp, err := imp.post(c.body)
		if err != nil {
			if !imp.answered.Load() || attempt > 3 {
				return fmt.Errorf("send lines %d to %d: %w", c.first, c.last(), err)
			}
			wait := time.Duration(1<<(attempt-1)) * time.Second
			imp.say("evp import: sending lines %d to %d failed (%v); sending them again in %s\n", c.first, c.last(), err, wait)
			if !sleepCtx(ctx, wait) {
				return errStopped
			}
			continue
		}
		imp.answered.Store(true)
		body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		_ = resp.Body.Close()
		if err != nil {
			return fmt.Errorf("read the answer to lines %d to %d: %w", c.first, c.last(), err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		switch resp.StatusCode {
		case http.StatusOK:
			return imp.answer(c, body)
		case http.StatusServiceUnavailable, http.StatusTooManyRequests:
			se := readServerError(resp)
			if attempt > importRetries {
				return fmt.Errorf("lines %d to %d: %w (sent %d times)", c.first, c.last(), se, attempt)
			}
			wait := time.Second
			if s, err := strconv.Atoi(strings.TrimSpace(se.retryAfter)); err == nil && s >= 0 {
				wait = min(time.Duration(s)*time.Second, importMaxWait)
			}
			se.retryAfter = ""
			imp.say("evp import: %v; sending lines %d to %d again in %s (retry %d of %d)\n", se, c.first, c.last(), wait, attempt, importRetries)
			if !sleepCtx(ctx, wait) {
				return errStopped
			}
		case http.StatusRequestEntityTooLarge:
			return imp.tooLarge(ctx, c)
		case http.StatusBadRequest:
			if imp.job.strict {
				if bad := strictLines(body, c); len(bad) > 0 {
					for _, b := range bad {
						imp.reject(b)
					}
					imp.mu.Lock()
					if imp.strictAt == nil || c.seq < imp.strictAt.seq {
						imp.strictAt = &c
					}
					imp.mu.Unlock()
					return errStopped
				}
			}
			return fmt.Errorf("lines %d to %d: %w", c.first, c.last(), readServerError(resp))
		case http.StatusUnauthorized, http.StatusForbidden:
			return readServerError(resp) // the key, not the lines
		default:
			return fmt.Errorf("lines %d to %d: %w", c.first, c.last(), readServerError(resp))
		}
	}
}

func (imp *importer) post(body []byte) (*http.Response, error) {
	// Not ctx: a request in flight is answered even after Ctrl-C.
	req, err := http.NewRequest(http.MethodPost, imp.job.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if looksLikeSessionToken(imp.job.key) {
		req.Header.Set("Authorization", "Bearer "+imp.job.key)
	} else {
		req.Header.Set("x-api-key", imp.job.key)
	}
	return importClient.Do(req)
}

// answer records a 200 answer to c.
func (imp *importer) answer(c importChunk, body []byte) error {
	var env struct {
		Data importAnswer `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Data.Accepted == nil {
		return fmt.Errorf("the answer to lines %d to %d is not an import answer: is the --url an evp with POST /api/v1/events/import?", c.first, c.last())
	}
	imp.accepted.Add(*env.Data.Accepted)
	imp.duplicates.Add(env.Data.Duplicates)
	for _, r := range env.Data.Rejected {
		b := badLine{line: c.first + r.Line - 1}
		for _, e := range r.Errors {
			b.reasons = append(b.reasons, e.Path+": "+e.Reason)
		}
		imp.reject(b)
	}
	return nil
}

// strictLines reads the bad lines of c from a strict 400 answer, whose details name
// "line N.path"; nil when the answer is another 400.
func strictLines(body []byte, c importChunk) []badLine {
	var env struct {
		Error struct {
			Code    string `json:"code"`
			Details []struct {
				Path   string `json:"path"`
				Reason string `json:"reason"`
			} `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) != nil || env.Error.Code != "VALIDATION_ERROR" {
		return nil
	}
	var bad []badLine
	for _, d := range env.Error.Details {
		rest, ok := strings.CutPrefix(d.Path, "line ")
		if !ok {
			return nil
		}
		num, path, _ := strings.Cut(rest, ".")
		n, err := strconv.Atoi(num)
		if err != nil {
			return nil
		}
		line := c.first + n - 1
		if len(bad) == 0 || bad[len(bad)-1].line != line {
			bad = append(bad, badLine{line: line})
		}
		bad[len(bad)-1].reasons = append(bad[len(bad)-1].reasons, path+": "+d.Reason)
	}
	return bad
}

// tooLarge handles a 413 answer to c: the chunks that follow are made smaller, and c is
// sent again in two halves; a single line is a bad line.
func (imp *importer) tooLarge(ctx context.Context, c importChunk) error {
	for {
		l := imp.limit.Load()
		if int64(len(c.body))/2 >= l || imp.limit.CompareAndSwap(l, max(int64(len(c.body))/2, 1)) {
			break
		}
	}
	if c.events <= 1 {
		line := c.first
		for i, l := range bytes.Split(c.body, []byte{'\n'}) {
			if len(bytes.TrimSpace(l)) > 0 {
				line = c.first + i
				break
			}
		}
		imp.reject(badLine{line, []string{"is larger than the server's body limit (413 PAYLOAD_TOO_LARGE, EVP_MAX_BODY_BYTES): not imported"}})
		if imp.job.strict {
			imp.mu.Lock()
			if imp.strictAt == nil || c.seq < imp.strictAt.seq {
				imp.strictAt = &c
			}
			imp.mu.Unlock()
			return errStopped
		}
		return nil
	}
	// Cut after the line that holds half the events.
	a := c
	half, seen, off := c.events/2, 0, 0
	for a.lines = 0; seen < half; a.lines++ {
		i := bytes.IndexByte(c.body[off:], '\n')
		if len(bytes.TrimSpace(c.body[off:off+i])) > 0 {
			seen++
		}
		off += i + 1
	}
	a.body, a.events = c.body[:off], half
	b := importChunk{body: c.body[off:], first: c.first + a.lines, lines: c.lines - a.lines, events: c.events - half, seq: c.seq}
	if err := imp.send(ctx, a); err != nil {
		return err
	}
	return imp.send(ctx, b)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// reject counts a bad line and keeps it when it is among the first importListed.
func (imp *importer) reject(b badLine) {
	imp.rejected.Add(1)
	imp.mu.Lock()
	defer imp.mu.Unlock()
	i, _ := slices.BinarySearchFunc(imp.bad, b.line, func(x badLine, line int) int { return x.line - line })
	if i < importListed {
		imp.bad = slices.Insert(imp.bad, i, b)
		if len(imp.bad) > importListed {
			imp.bad = imp.bad[:importListed]
		}
	}
}

// listBadLines writes the bad lines kept. imp.mu should be held.
func (imp *importer) listBadLines() {
	for _, b := range imp.bad {
		fmt.Fprintf(imp.stderr, "line %d: %s\n", b.line, strings.Join(b.reasons, "; "))
	}
	if more := imp.rejected.Load() - int64(len(imp.bad)); more > 0 {
		fmt.Fprintf(imp.stderr, "... and %d more lines rejected\n", more)
	}
}

// fail keeps the first error that stops the import.
func (imp *importer) fail(err error) {
	imp.mu.Lock()
	defer imp.mu.Unlock()
	if imp.failed == nil {
		imp.failed = err
	}
}

// chunkDone records c as answered, and moves through past every chunk answered in order.
func (imp *importer) chunkDone(c importChunk) {
	imp.mu.Lock()
	defer imp.mu.Unlock()
	imp.done[c.seq] = c.last()
	for {
		last, ok := imp.done[imp.nextSeq]
		if !ok {
			return
		}
		delete(imp.done, imp.nextSeq)
		imp.through = last
		imp.nextSeq++
	}
}

// say writes a message on stderr, clearing the progress line first.
func (imp *importer) say(format string, a ...any) {
	imp.mu.Lock()
	defer imp.mu.Unlock()
	if imp.tty {
		fmt.Fprint(imp.stderr, "\r\033[K")
	}
	fmt.Fprintf(imp.stderr, format, a...)
}

// showProgress updates a progress line on stderr a few times a second when on a
// terminal, until the returned function is called; that clears the line.
func (imp *importer) showProgress() (stop func()) {
	return progressLine(imp.stderr, &imp.mu, imp.tty, func() string {
		acc, dup := imp.accepted.Load(), imp.duplicates.Load()
		rate := float64(acc+dup) / max(time.Since(imp.start).Seconds(), 1e-9)
		return fmt.Sprintf("importing: %d lines read, %d events accepted, %d duplicates, %d rejected, %.0f events/s",
			imp.read.Load(), acc, dup, imp.rejected.Load(), rate)
	})
}
