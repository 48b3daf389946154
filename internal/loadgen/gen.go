package loadgen

import (
	"bytes"
	"compress/gzip"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// EventTypes are the ten event types the generator sends.
var EventTypes = [...]string{
	"page_view", "click", "purchase", "signup", "login",
	"logout", "add_to_cart", "search", "share", "video_play",
}

// dupWindow is how far back a repeated eventId reaches: recent enough to be inside the
// server's dedup window at any realistic rate.
const dupWindow = 100_000

// variantsPerType is how many distinct payloads are prepared for each event type; fewer
// when they are so large that all of them would take more than variantBytes.
const (
	variantsPerType = 32
	variantBytes    = 64 << 20
)

// GenConfig says what events a Generator makes.
type GenConfig struct {
	RunID        string  // part of every eventId: "lg-<RunID>-<n>"
	Users        int     // userId cardinality ("user_0" .. "user_<Users-1>")
	Sessions     int     // sessionId cardinality
	PayloadBytes int     // length of the payload object's JSON, padded; 0 means no payload
	DupRatio     float64 // share of events that reuse an earlier eventId, 0..1
	Seed         uint64  // seeds the payload variants; each Stream has its own seed too
	// Segment makes Segment track messages ({"batch": [...]} for /v1/batch) carrying the same
	// data: messageId, event, userId, context.sessionId, metadata in context, payload as
	// properties.
	Segment bool
	// Spread stamps each event at a random time in the Spread before the request (a
	// backfill, or clients flushing a day of queued events); 0 stamps them all now.
	Spread time.Duration
}

// Generator makes realistic event bodies cheaply: the static parts of every event
// (payloads per type, metadata) are prepared once as bytes and each event is assembled by
// appending them next to a fresh eventId, user, session and timestamp. A Generator is safe
// for concurrent use through Streams, one per goroutine.
type Generator struct {
	cfg      GenConfig
	idPrefix []byte // `{"eventId":"lg-<run>-`
	payloads [len(EventTypes)][][]byte
	metas    [][]byte
	issued   atomic.Int64 // unique ids handed out so far
	dups     atomic.Int64 // events that reused an earlier id
	streams  atomic.Uint64
}

// NewGenerator prepares the event parts for cfg.
func NewGenerator(cfg GenConfig) *Generator {
	if cfg.Users < 1 {
		cfg.Users = 1
	}
	if cfg.Sessions < 1 {
		cfg.Sessions = 1
	}
	g := &Generator{cfg: cfg}
	g.idPrefix = append([]byte(`{"eventId":"lg-`), cfg.RunID...)
	if cfg.Segment {
		g.idPrefix = append([]byte(`{"type":"track","messageId":"lg-`), cfg.RunID...)
	}
	g.idPrefix = append(g.idPrefix, '-')
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15))
	variants := variantsPerType
	if cfg.PayloadBytes > 0 {
		variants = min(variants, max(1, variantBytes/(cfg.PayloadBytes*len(EventTypes))))
	}
	for t := range EventTypes {
		for v := 0; v < variants; v++ {
			g.payloads[t] = append(g.payloads[t], makePayload(t, rng, cfg.PayloadBytes))
		}
	}
	for _, src := range []string{"web", "ios", "android"} {
		for _, br := range []string{"chrome", "firefox", "safari", "edge"} {
			for _, ver := range []string{"1.2.3", "1.3.0", "2.0.1"} {
				g.metas = append(g.metas, []byte(`{"source":"`+src+`","browser":"`+br+`","version":"`+ver+`","locale":"en-US"}`))
			}
		}
	}
	return g
}

// Issued returns how many unique eventIds were handed out.
func (g *Generator) Issued() int64 { return g.issued.Load() }

// Duplicates returns how many generated events reused an earlier eventId.
func (g *Generator) Duplicates() int64 { return g.dups.Load() }

// makePayload returns one payload object for event type t, padded with a "pad" string so
// that its JSON is size bytes long (or longer when the fields alone exceed it).
func makePayload(t int, rng *rand.Rand, size int) []byte {
	if size <= 0 {
		return nil
	}
	n := func(max int) string { return strconv.Itoa(rng.IntN(max)) }
	var b []byte
	switch EventTypes[t] {
	case "page_view":
		b = []byte(`{"page":"/products/` + n(5000) + `","referrer":"https://www.example.com/","title":"Product ` + n(5000) + `"`)
	case "click":
		b = []byte(`{"element":"button#cta-` + n(50) + `","page":"/products/` + n(5000) + `","x":` + n(1920) + `,"y":` + n(1080))
	case "purchase":
		b = []byte(`{"orderId":"ord_` + n(1_000_000) + `","amount":` + n(500) + `.` + strconv.Itoa(10+rng.IntN(90)) + `,"currency":"USD","items":` + strconv.Itoa(1+rng.IntN(9)))
	case "signup":
		plans := []string{"free", "pro", "team"}
		b = []byte(`{"plan":"` + plans[rng.IntN(len(plans))] + `","method":"email","campaign":"spring-` + n(20) + `"`)
	case "login":
		b = []byte(`{"method":"password","success":true,"mfa":` + strconv.FormatBool(rng.IntN(2) == 0))
	case "logout":
		b = []byte(`{"reason":"user","sessionSeconds":` + n(7200))
	case "add_to_cart":
		b = []byte(`{"productId":"prod_` + n(5000) + `","quantity":` + strconv.Itoa(1+rng.IntN(5)) + `,"price":` + n(300) + `.99`)
	case "search":
		b = []byte(`{"query":"running shoes ` + n(100) + `","results":` + n(400) + `,"page":` + strconv.Itoa(1+rng.IntN(5)))
	case "share":
		chans := []string{"twitter", "facebook", "email", "link"}
		b = []byte(`{"channel":"` + chans[rng.IntN(len(chans))] + `","url":"/products/` + n(5000) + `"`)
	case "video_play":
		b = []byte(`{"videoId":"vid_` + n(2000) + `","position":` + n(600) + `,"quality":"1080p"`)
	}
	const padKey = `,"pad":""}`
	if pad := size - len(b) - len(padKey); pad > 0 {
		b = append(b, `,"pad":"`...)
		for i := 0; i < pad; i++ {
			b = append(b, 'a'+byte(i%26))
		}
		b = append(b, `"}`...)
	} else {
		b = append(b, '}')
	}
	return b
}

// Stream appends events for one goroutine. It is not safe for concurrent use.
type Stream struct {
	g   *Generator
	rng *rand.Rand
	ts  []byte
	now time.Time // the request's time
}

// NewStream returns a Stream with its own random source.
func (g *Generator) NewStream() *Stream {
	k := g.streams.Add(1)
	return &Stream{g: g, rng: rand.New(rand.NewPCG(g.cfg.Seed^0x5851f42d4c957f2d, k))}
}

// AppendBody appends a request body with n events to dst: the event object itself when
// single is true (POST /api/v1/events), otherwise {"events":[...]} ({"batch":[...]} in
// Segment's format). It returns the body and how many of its events reuse an earlier id.
func (s *Stream) AppendBody(dst []byte, n int, single bool, now time.Time) ([]byte, int) {
	s.now = now.UTC()
	s.ts = s.now.AppendFormat(s.ts[:0], tsLayout)
	dups := 0
	if single {
		var dup bool
		dst, dup = s.appendEvent(dst)
		if dup {
			dups++
		}
		return dst, dups
	}
	if s.g.cfg.Segment {
		dst = append(dst, `{"batch":[`...)
	} else {
		dst = append(dst, `{"events":[`...)
	}
	for i := 0; i < n; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		var dup bool
		dst, dup = s.appendEvent(dst)
		if dup {
			dups++
		}
	}
	return append(dst, "]}"...), dups
}

// nextID returns the number of the next event's id and whether it repeats an earlier one.
func (s *Stream) nextID() (int64, bool) {
	g := s.g
	if g.cfg.DupRatio > 0 && s.rng.Float64() < g.cfg.DupRatio {
		if issued := g.issued.Load(); issued > 0 {
			g.dups.Add(1)
			return issued - 1 - s.rng.Int64N(min(issued, dupWindow)), true
		}
	}
	return g.issued.Add(1) - 1, false
}

func (s *Stream) appendEvent(dst []byte) ([]byte, bool) {
	g := s.g
	if g.cfg.Segment {
		return s.appendMessage(dst)
	}
	id, dup := s.nextID()
	t := s.rng.IntN(len(EventTypes))
	dst = append(dst, g.idPrefix...)
	dst = strconv.AppendInt(dst, id, 10)
	dst = append(dst, `","eventType":"`...)
	dst = append(dst, EventTypes[t]...)
	dst = append(dst, `","userId":"user_`...)
	dst = strconv.AppendInt(dst, int64(s.rng.IntN(g.cfg.Users)), 10)
	dst = append(dst, `","sessionId":"sess_`...)
	dst = strconv.AppendInt(dst, int64(s.rng.IntN(g.cfg.Sessions)), 10)
	dst = append(dst, `","timestamp":"`...)
	dst = s.appendTime(dst)
	dst = append(dst, `","metadata":`...)
	dst = append(dst, g.metas[s.rng.IntN(len(g.metas))]...)
	if p := g.payloads[t]; p[0] != nil {
		dst = append(dst, `,"payload":`...)
		dst = append(dst, p[s.rng.IntN(len(p))]...)
	}
	return append(dst, '}'), dup
}

// tsLayout is how events' times are written (JavaScript's toISOString).
const tsLayout = "2006-01-02T15:04:05.000Z07:00"

// appendTime appends an event's time: the request's, or with Spread a random one before it.
func (s *Stream) appendTime(dst []byte) []byte {
	if s.g.cfg.Spread <= 0 {
		return append(dst, s.ts...)
	}
	return s.now.Add(-time.Duration(s.rng.Int64N(int64(s.g.cfg.Spread)))).AppendFormat(dst, tsLayout)
}

// appendMessage appends a Segment track message with what appendEvent puts in an event.
func (s *Stream) appendMessage(dst []byte) ([]byte, bool) {
	g := s.g
	id, dup := s.nextID()
	t := s.rng.IntN(len(EventTypes))
	dst = append(dst, g.idPrefix...)
	dst = strconv.AppendInt(dst, id, 10)
	dst = append(dst, `","event":"`...)
	dst = append(dst, EventTypes[t]...)
	dst = append(dst, `","userId":"user_`...)
	dst = strconv.AppendInt(dst, int64(s.rng.IntN(g.cfg.Users)), 10)
	dst = append(dst, `","timestamp":"`...)
	dst = s.appendTime(dst)
	dst = append(dst, `","context":{"sessionId":"sess_`...)
	dst = strconv.AppendInt(dst, int64(s.rng.IntN(g.cfg.Sessions)), 10)
	dst = append(dst, `","app":`...)
	dst = append(dst, g.metas[s.rng.IntN(len(g.metas))]...)
	dst = append(dst, '}')
	if p := g.payloads[t]; p[0] != nil {
		dst = append(dst, `,"properties":`...)
		dst = append(dst, p[s.rng.IntN(len(p))]...)
	}
	return append(dst, '}'), dup
}

var gzipPool = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return w
}}

// appendGzip appends the gzip encoding of src to dst.
func appendGzip(dst, src []byte) []byte {
	buf := bytes.NewBuffer(dst)
	zw := gzipPool.Get().(*gzip.Writer)
	zw.Reset(buf)
	_, _ = zw.Write(src) // into a bytes.Buffer: cannot fail
	_ = zw.Close()
	gzipPool.Put(zw)
	return buf.Bytes()
}
