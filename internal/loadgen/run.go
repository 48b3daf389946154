package loadgen

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// runner holds the state of one run.
type runner struct {
	cfg      Config
	single   bool
	endpoint string
	gen      *Generator
	client   *http.Client
	total    *Histogram // every request of the run
	interval *Histogram // requests since the last progress line
	schedLag *Histogram // open loop: how late each start was handed to a worker
	workers  int        // open loop: workers (connections) started

	remaining atomic.Int64 // count mode: events not yet claimed
	firstSend atomic.Int64 // unix ns of the first request start
	sending   atomic.Bool

	reqSent, reqOK, reqFailed  atomic.Int64
	evSent, evAccepted, evDup  atomic.Int64
	evRejected, evDupGenerated atomic.Int64
	evUnanswered               atomic.Int64
	missedReq, missedEv        atomic.Int64
	byStatus                   [600]atomic.Int64 // requests by HTTP status; 0 = no response
	codesMu                    sync.Mutex
	codes                      map[string]int64 // failed requests by error code

	header        http.Header // of every ingestion request
	raw           *rawClient  // nil: net/http
	metricsClient *http.Client
	stored        atomic.Int64 // latest store count read during the run, -1 unknown
	samples       storeSamples // store counts read during the run, for the storing rate's edges
	waiting       atomic.Int64 // store count being waited for; 0 while sending
	sampler       *procSampler
}

// Run sends the load described by cfg and returns its report. Cancelling ctx stops sending
// early; the report then covers what was sent.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.RunID == "" {
		var b [4]byte
		rand.Read(b[:])
		cfg.RunID = hex.EncodeToString(b[:])
	}
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	conns := cfg.Concurrency
	if cfg.open() {
		conns = cfg.MaxInflight
	}
	r := &runner{
		cfg:      cfg,
		single:   cfg.Batch == 1,
		endpoint: cfg.endpoint(),
		gen: NewGenerator(GenConfig{RunID: cfg.RunID, Users: cfg.Users, Sessions: cfg.Sessions,
			PayloadBytes: cfg.PayloadBytes, Segment: cfg.Segment, DupRatio: cfg.DupRatio, Seed: cfg.Seed, Spread: cfg.Spread}),
		client:        &http.Client{Transport: newTransport(conns), Timeout: cfg.RequestTimeout},
		metricsClient: &http.Client{Transport: newTransport(2), Timeout: 10 * time.Second},
		total:         NewHistogram(),
		interval:      NewHistogram(),
		schedLag:      NewHistogram(),
		codes:         map[string]int64{},
	}
	r.header = http.Header{"Content-Type": {"application/json"}, "X-Api-Key": {cfg.Key}}
	if cfg.Gzip {
		r.header.Set("Content-Encoding", "gzip")
	}
	if !cfg.NetHTTP && strings.HasPrefix(r.endpoint, "http://") {
		var err error
		if r.raw, err = newRawClient(r.endpoint, r.header, cfg.RequestTimeout); err != nil {
			return nil, err
		}
	}
	r.remaining.Store(cfg.Count)
	r.stored.Store(-1)
	defer r.client.CloseIdleConnections()
	defer r.metricsClient.CloseIdleConnections()

	rep := &Report{RunID: cfg.RunID, URL: cfg.URL, Endpoint: r.endpoint, Batch: cfg.Batch, Gzip: cfg.Gzip,
		PayloadBytes: cfg.PayloadBytes, Users: cfg.Users, Sessions: cfg.Sessions, DupRatio: cfg.DupRatio}
	if cfg.open() {
		rep.Mode, rep.TargetRate, rep.MaxInflight = "open", cfg.Rate, cfg.MaxInflight
	} else {
		rep.Mode, rep.Concurrency = "closed", cfg.Concurrency
	}

	// The store count before sending, so that the wait afterwards knows its target.
	// Events already in the server's buffer will be stored too: they count in the target.
	var base serverMetrics
	baseline, baseErr := int64(0), error(nil)
	if cfg.WaitProcessed {
		base, baseErr = r.readMetrics(ctx)
		baseline = base.Stored
		if baseErr != nil {
			rep.EndToEnd.Error = "cannot read GET /api/metrics: " + baseErr.Error()
		} else {
			r.stored.Store(baseline)
		}
	}

	pid, pidErr := cfg.PID, error(nil)
	if pid == 0 {
		pid, pidErr = findServerPID(cfg.URL)
	}
	if pid > 0 {
		r.sampler, pidErr = startSampler(pid, 250*time.Millisecond)
	}
	if pidErr != nil {
		rep.Server.Error = pidErr.Error()
	}
	rep.Server.PID = pid
	selfCPU0 := selfCPU()
	started := time.Now()

	stopProgress := r.startProgress(ctx, started, baseline, cfg.WaitProcessed && baseErr == nil)
	r.sending.Store(true)
	if cfg.open() {
		r.openLoop(ctx)
	} else {
		r.closedLoop(ctx)
	}
	r.sending.Store(false)
	sendEnd := time.Now()
	selfCPUSend := selfCPU() - selfCPU0
	var atSendEnd ProcSample // zero when the server was gone by then
	if r.sampler != nil {
		if s, err := ReadProc(r.sampler.pid); err == nil {
			atSendEnd = s
		}
	}
	first := time.Unix(0, r.firstSend.Load())
	if r.firstSend.Load() == 0 {
		first = started
	}

	// End to end: wait until the store holds every accepted event.
	accepted := r.evAccepted.Load()
	if cfg.WaitProcessed && baseErr == nil {
		rep.EndToEnd.Measured = true
		target := baseline + base.Buffered + accepted
		r.waiting.Store(target)
		res, err := r.waitStored(ctx, target, cfg.WaitTimeout)
		e := &rep.EndToEnd
		if res.read {
			e.StoredEvents = max(0, res.last.Stored-baseline-base.Buffered)
		}
		if res.reached || res.drained {
			if d := res.storedAt.Sub(first).Seconds(); d > 0 {
				e.EventsPerSec = float64(e.StoredEvents) / d
			}
			e.LagSeconds = max(0, res.storedAt.Sub(sendEnd).Seconds())
		}
		if first, last, ok := r.samples.edgeRates(time.Minute); ok && (res.reached || res.drained) {
			e.FirstMinuteEventsPerSec, e.LastMinuteEventsPerSec = first, last
		}
		switch {
		case err != nil:
			e.Error = err.Error()
		case res.reached:
			e.Reached = true
		case res.drained && target-res.last.Stored <= r.reaccepted():
			// Repeats the server took for new ones (its dedup window had dropped their ids):
			// the store keeps one event per eventId, so the shortfall loses nothing.
			e.Reached = true
			e.RepeatsStoredOnce = target - res.last.Stored
		case res.drained:
			e.Shortfall = target - res.last.Stored
			e.Error = fmt.Sprintf("the server's buffer is empty but the store holds %d events fewer than were accepted "+
				"(dead-lettered during the run: %d; the rest were answered 202 but never stored, e.g. one eventId accepted twice)",
				e.Shortfall, res.last.DLQ-base.DLQ)
		default:
			e.Error = fmt.Sprintf("the store held %d of %d accepted events after %s", e.StoredEvents, accepted, cfg.WaitTimeout)
		}
	}
	stopProgress()

	if r.sampler != nil {
		from, last, peak, err := r.sampler.finish()
		if err != nil {
			rep.Server.Error = err.Error()
		}
		rep.Server.Measured = true
		rep.Server.CPUSeconds = (last.CPU - from.CPU).Seconds()
		if d := last.At.Sub(from.At).Seconds(); d > 0 {
			rep.Server.AvgCores = rep.Server.CPUSeconds / d
		}
		if atSendEnd.At.IsZero() {
			atSendEnd = last // the server exited while sending: its last reading
		}
		rep.Server.SendCPUSeconds = (atSendEnd.CPU - from.CPU).Seconds()
		if d := atSendEnd.At.Sub(from.At).Seconds(); d > 0 {
			rep.Server.SendAvgCores = rep.Server.SendCPUSeconds / d
		}
		rep.Server.PeakRSSMB = float64(max(peak, last.HWMBytes)) / (1 << 20)
		rep.Server.MaxSampledRSSMB = float64(peak) / (1 << 20)
	}
	rep.Loadgen.CPUSeconds = selfCPUSend.Seconds()
	if d := sendEnd.Sub(started).Seconds(); d > 0 {
		rep.Loadgen.AvgCores = rep.Loadgen.CPUSeconds / d
	}

	r.fill(rep, first, sendEnd)
	return rep, nil
}

// findServerPID finds the process listening on the URL's port when the URL names this machine.
func findServerPID(raw string) (int, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return 0, err
	}
	host := u.Hostname()
	if host != "localhost" && host != "" {
		ip := net.ParseIP(host)
		if ip == nil || !(ip.IsLoopback() || ip.IsUnspecified()) {
			return 0, fmt.Errorf("server %s is not on this machine; pass --pid to sample it", host)
		}
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return 0, err
	}
	return FindListenerPID(p)
}

func newTransport(conns int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		WriteBufferSize:     64 << 10,
		ReadBufferSize:      16 << 10,
	}
}

// claim reserves the events of the next request: a full batch, fewer at the end of a
// --count run, 0 when none are left.
func (r *runner) claim() int {
	if r.cfg.Count == 0 {
		return r.cfg.Batch
	}
	for {
		rem := r.remaining.Load()
		if rem <= 0 {
			return 0
		}
		n := min(rem, int64(r.cfg.Batch))
		if r.remaining.CompareAndSwap(rem, rem-n) {
			return int(n)
		}
	}
}

func (r *runner) markFirst(t time.Time) {
	if r.firstSend.Load() == 0 {
		r.firstSend.CompareAndSwap(0, t.UnixNano())
	}
}

// busyBackoff is how long a closed-loop worker waits after a 503: evp's Retry-After.
const busyBackoff = time.Second

// closedLoop runs Concurrency workers that send back to back, each pausing busyBackoff
// after a 503.
func (r *runner) closedLoop(ctx context.Context) {
	var deadline time.Time
	if r.cfg.Duration > 0 {
		deadline = time.Now().Add(r.cfg.Duration)
	}
	var wg sync.WaitGroup
	for i := 0; i < r.cfg.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := r.newWorker()
			defer w.close()
			for ctx.Err() == nil {
				if !deadline.IsZero() && !time.Now().Before(deadline) {
					return
				}
				n := r.claim()
				if n == 0 {
					return
				}
				b := w.build(n)
				start := time.Now()
				r.markFirst(start)
				if w.send(b, n, start) == http.StatusServiceUnavailable {
					// As a client library would, wait as evp's Retry-After asks (1 s)
					// rather than spin on 503s while the buffer is full.
					select {
					case <-time.After(busyBackoff):
					case <-ctx.Done():
					}
				}
			}
		}()
	}
	wg.Wait()
}

type job struct {
	intended time.Time
	n        int
}

// openLoop schedules request starts at fixed intervals and hands each to an idle worker.
// Workers (each with its connection) are started as needed up to MaxInflight; a start that
// finds all of them busy is missed. Latency is measured from the scheduled start, so a slow server cannot hide its
// queueing by slowing the generator down (coordinated omission).
func (r *runner) openLoop(ctx context.Context) {
	every := float64(time.Second) * float64(r.cfg.Batch) / r.cfg.Rate
	start := time.Now()
	r.markFirst(start)
	var stop time.Time
	if r.cfg.Duration > 0 {
		stop = start.Add(r.cfg.Duration)
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	workers := 0          // started, never more than MaxInflight
	var busy atomic.Int64 // workers given a start they have not finished
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
loop:
	for i := int64(0); ; i++ {
		intended := start.Add(time.Duration(float64(i) * every))
		if !stop.IsZero() && !intended.Before(stop) {
			break
		}
		n := r.claim()
		if n == 0 {
			break
		}
		if d := time.Until(intended); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				break loop
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			break
		}
		j := job{intended: intended, n: n}
		r.schedLag.Record(time.Since(intended))
		if int64(workers) > busy.Load() {
			// A worker is done with its last request (and has its next body ready).
			busy.Add(1)
			jobs <- j
			continue
		}
		if workers < r.cfg.MaxInflight {
			workers++
			busy.Add(1)
			wg.Add(1)
			go func(j job) {
				defer wg.Done()
				w := r.newWorker()
				defer w.close()
				for {
					w.send(w.build(j.n), j.n, j.intended)
					// Prepare the next body while idle, so it costs no latency.
					w.prepare(r.cfg.Batch)
					busy.Add(-1)
					var ok bool
					if j, ok = <-jobs; !ok {
						return
					}
				}
			}(j)
			continue
		}
		r.missedReq.Add(1)
		r.missedEv.Add(int64(n))
	}
	close(jobs)
	wg.Wait()
	r.workers = workers
}

// reqBody holds a worker's request body buffers.
type reqBody struct {
	raw, z []byte
	data   []byte // raw or z: what is sent
	rd     bytes.Reader
	n      int  // events in the body
	dups   int  // of those, events that reuse an earlier eventId
	ready  bool // built ahead and not sent yet
}

type worker struct {
	r       *runner
	st      *Stream
	b       *reqBody
	rc      *rawConn // nil with net/http
	resp    bytes.Buffer
	respBuf []byte
}

func (r *runner) newWorker() *worker {
	w := &worker{r: r, st: r.gen.NewStream(), b: new(reqBody)}
	if r.raw != nil {
		w.rc = r.raw.conn()
	}
	return w
}

func (w *worker) close() {
	if w.rc != nil {
		w.rc.close()
	}
}

// build makes w.b a body of n events, unless it already holds a prepared one of that size.
func (w *worker) build(n int) *reqBody {
	b := w.b
	if b.ready && b.n == n {
		b.ready = false
		return b
	}
	b.raw, b.dups = w.st.AppendBody(b.raw[:0], n, w.r.single, time.Now())
	b.n, b.ready = n, false
	data := b.raw
	if w.r.cfg.Gzip {
		b.z = appendGzip(b.z[:0], b.raw)
		data = b.z
	}
	b.data = data
	b.rd.Reset(data)
	return b
}

// prepare builds the next body ahead, while the worker waits for its next start.
func (w *worker) prepare(n int) {
	if !w.b.ready {
		w.build(n)
		w.b.ready = true
	}
}

// send posts b, records the outcome and returns the HTTP status (0 when there was no
// answer); latency counts from start.
func (w *worker) send(b *reqBody, n int, start time.Time) int {
	r := w.r
	r.reqSent.Add(1)
	r.evSent.Add(int64(n))
	r.evDupGenerated.Add(int64(b.dups))
	var status int
	var body []byte
	var err error
	if w.rc != nil {
		status, w.respBuf, err = w.rc.post(b.data, w.respBuf[:0])
		body = w.respBuf
	} else {
		status, body, err = w.postNetHTTP(b)
	}
	lat := time.Since(start)
	r.total.Record(lat)
	r.interval.Record(lat)
	if err != nil {
		r.failed(0, "transport: "+transportClass(err), n)
		return 0
	}
	if status < 200 || status > 299 {
		code := errorCode(body)
		if code == "" {
			code = "HTTP_" + strconv.Itoa(status)
		}
		r.failed(status, code, n)
		return status
	}
	acc, dup := countAnswer(body, n)
	r.reqOK.Add(1)
	r.evAccepted.Add(int64(acc))
	r.evDup.Add(int64(dup))
	r.byStatus[status].Add(1)
	return status
}

// postNetHTTP sends b with net/http (https targets, or --client net/http).
//
// The body is a *bytes.Reader so that the transport writes headers and body in one write.
// Its buffers are reused for the next request only when the whole answer was read on a
// connection that stays open: the transport then has finished writing the request (it
// checks that before it keeps a connection), so nothing reads the old body any more.
// Otherwise the worker takes fresh buffers.
func (w *worker) postNetHTTP(b *reqBody) (int, []byte, error) {
	r := w.r
	reuse := false
	defer func() {
		if !reuse {
			w.b = new(reqBody)
		}
	}()
	req, err := http.NewRequest(http.MethodPost, r.endpoint, &b.rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header = r.header // read only, shared
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	w.resp.Reset()
	_, err = w.resp.ReadFrom(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return 0, nil, err
	}
	reuse = !resp.Close
	return resp.StatusCode, w.resp.Bytes(), nil
}

// failed counts a request that got an error answer (status), or no answer at all (status 0:
// the server may or may not have taken its events).
func (r *runner) failed(status int, code string, n int) {
	r.reqFailed.Add(1)
	if status == 0 {
		r.evUnanswered.Add(int64(n))
	} else {
		r.evRejected.Add(int64(n))
	}
	if status >= len(r.byStatus) {
		status = 0
	}
	r.byStatus[status].Add(1)
	r.codesMu.Lock()
	r.codes[code]++
	r.codesMu.Unlock()
}

// transportClass names a request failure without its changing details (addresses, ports).
func transportClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no local port available"
	case errors.Is(err, errProtocol):
		return "malformed answer"
	}
	return "network error"
}

// jsonValue returns the raw scalar value of the first "key": in body, or nil.
func jsonValue(body []byte, key string) []byte {
	var pat [64]byte
	p := append(append(append(pat[:0], '"'), key...), '"', ':')
	i := bytes.Index(body, p)
	if i < 0 {
		return nil
	}
	v := bytes.TrimLeft(body[i+len(p):], " \t\r\n")
	end := bytes.IndexAny(v, ",}] \t\r\n")
	if end < 0 {
		end = len(v)
	}
	return v[:end]
}

// countAnswer reads accepted and duplicate events from a 2xx answer to a request of n
// events: the batch answer's numbers, the single answer's booleans, or all accepted when
// the answer says neither (a no-op server).
func countAnswer(body []byte, n int) (acc, dup int) {
	dup = -1
	if v := jsonValue(body, "duplicates"); v != nil {
		if d, err := strconv.Atoi(string(v)); err == nil {
			dup = d
		}
	}
	if dup < 0 {
		dup = 0
		if v := jsonValue(body, "duplicate"); string(v) == "true" {
			dup = n
		}
	}
	v := jsonValue(body, "accepted")
	switch {
	case string(v) == "true":
		return n, 0
	case string(v) == "false":
		return 0, dup
	case v != nil:
		if a, err := strconv.Atoi(string(v)); err == nil {
			return a, dup
		}
	}
	return max(0, n-dup), dup
}

// errorCode returns error.code of an error answer.
func errorCode(body []byte) string {
	v := jsonValue(body, "code")
	if len(v) < 2 || v[0] != '"' {
		return ""
	}
	if j := bytes.IndexByte(v[1:], '"'); j >= 0 {
		return string(v[1 : 1+j])
	}
	return ""
}

// serverMetrics is what the run reads from GET /api/metrics.
type serverMetrics struct {
	Stored   int64 // data.processing.totalEvents
	DLQ      int64 // data.errors.dlqEvents
	Buffered int64 // data.queue.streamLength: accepted events not yet stored
	Pending  int64 // data.queue.pendingMessages: of those, in a worker's hands
	HasQueue bool
}

// storeCount reads data.processing.totalEvents from GET /api/metrics.
func (r *runner) storeCount(ctx context.Context) (int64, error) {
	m, err := r.readMetrics(ctx)
	return m.Stored, err
}

func (r *runner) readMetrics(ctx context.Context) (serverMetrics, error) {
	var out serverMetrics
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, trimSlash(r.cfg.URL)+"/api/metrics", nil)
	if err != nil {
		return out, err
	}
	req.Header.Set("x-api-key", r.cfg.Key)
	resp, err := r.metricsClient.Do(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return out, err
	}
	if resp.StatusCode != http.StatusOK {
		msg := errorCode(body)
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return out, fmt.Errorf("status %d %s", resp.StatusCode, msg)
	}
	var m struct {
		Data struct {
			Processing struct {
				TotalEvents *int64 `json:"totalEvents"`
			} `json:"processing"`
			Errors struct {
				DLQEvents int64 `json:"dlqEvents"`
			} `json:"errors"`
			Queue *struct {
				StreamLength    int64 `json:"streamLength"`
				PendingMessages int64 `json:"pendingMessages"`
			} `json:"queue"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return out, fmt.Errorf("answer is not JSON: %v", err)
	}
	if m.Data.Processing.TotalEvents == nil {
		return out, errors.New("answer has no data.processing.totalEvents")
	}
	out.Stored, out.DLQ = *m.Data.Processing.TotalEvents, m.Data.Errors.DLQEvents
	if q := m.Data.Queue; q != nil {
		out.HasQueue, out.Buffered, out.Pending = true, q.StreamLength, q.PendingMessages
	}
	return out, nil
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// drainSettle is how long the store count must stay unchanged, with the server's buffer
// empty, before the wait ends short of its target.
const drainSettle = 2 * time.Second

// waitResult is the outcome of waiting for the store.
type waitResult struct {
	reached  bool      // the store count reached the target
	drained  bool      // the buffer emptied with the store count below the target
	storedAt time.Time // when the count was first seen at its final value
	last     serverMetrics
	read     bool // last holds a reading
}

// waitStored polls the store count until it reaches target, the server's buffer is empty
// and the count stops growing (some accepted events will never be stored), or timeout passes.
func (r *runner) waitStored(ctx context.Context, target int64, timeout time.Duration) (waitResult, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	res := waitResult{storedAt: start}
	var lastErr error
	for {
		m, err := r.readMetrics(ctx)
		at := time.Now()
		if err == nil {
			if !res.read || m.Stored != res.last.Stored {
				res.storedAt = at
			}
			res.last, res.read, lastErr = m, true, nil
			r.stored.Store(m.Stored)
			r.samples.add(at, m.Stored)
			if m.Stored >= target {
				res.reached = true
				return res, nil
			}
			if m.HasQueue && m.Buffered == 0 && m.Pending == 0 && at.Sub(res.storedAt) >= drainSettle {
				res.drained = true
				return res, nil
			}
		} else {
			lastErr = err
		}
		if ctx.Err() != nil {
			return res, errors.New("interrupted while waiting for the store")
		}
		if at.After(deadline) {
			if !res.read && lastErr != nil {
				return res, fmt.Errorf("cannot read GET /api/metrics: %v", lastErr)
			}
			return res, nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// reaccepted is how many events sent with a repeated eventId the server accepted rather
// than answering as duplicates.
func (r *runner) reaccepted() int64 {
	return max(0, r.evDupGenerated.Load()-r.evDup.Load())
}
