package httpapi

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
)

// The events explorer: search and page through stored events (GET /api/v1/events), one
// event (GET /api/v1/events/{eventId}), and export (GET /api/v1/events/export). Every query
// is bounded: a page by its limit, its bytes and the time it may scan; an export by the
// number running at once; every parameter by its length.

const (
	eventPageDefault = 50
	eventPageMax     = 1000
	// eventPageBytes bounds a page's events (their metadata and payload): events may be
	// megabytes each.
	eventPageBytes = 8 << 20
	// eventPageBudget is how long a page may scan before it answers with what it found and
	// a cursor to continue (a property condition over a long range reads every event).
	eventPageBudget = 500 * time.Millisecond
	maxPropConds    = 5
	maxPropDepth    = 8
	maxParamLen     = 1024
	// exportsAtOnce bounds the exports running together: each holds a store connection
	// for as long as its client reads.
	exportsAtOnce = 2
	// searchesAtOnce bounds the pages and events read together (the embedded store reads
	// with four connections); a request waits searchWait for a place, then is answered 503.
	searchesAtOnce = 8
	searchWait     = time.Second
)

// exportStall is how long an export waits on a client that reads nothing.
var exportStall = time.Minute

// eventPage is one page of GET /api/v1/events.
type eventPage struct {
	Events     []store.StoredEvent `json:"events"`
	NextCursor string              `json:"nextCursor,omitempty"`
}

// eventQuery reads the filters every events route shares.
func eventQuery(v url.Values, now time.Time) (store.EventQuery, *Error) {
	var q store.EventQuery
	for _, f := range []struct {
		name string
		dst  *string
	}{{"eventType", &q.EventType}, {"userId", &q.UserID}, {"sessionId", &q.SessionID}} {
		*f.dst = v.Get(f.name)
		if len(*f.dst) > maxParamLen {
			return q, validation(f.name, fmt.Sprintf("must be at most %d bytes", maxParamLen))
		}
	}
	if name := v.Get("timeRange"); name != "" {
		if v.Get("from") != "" || v.Get("to") != "" {
			return q, validation("timeRange", "give either timeRange or from and to")
		}
		p, ok := presetRanges[name]
		if !ok {
			return q, validation("timeRange", "must be one of 15m, 1h, 24h, 7d")
		}
		q.From = now.Add(-p.span)
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		s := v.Get(f.name)
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, validation(f.name, "must be an RFC 3339 time")
		}
		if !event.TimeInRange(t) {
			return q, validation(f.name, event.TimeRangeReason)
		}
		*f.dst = t
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		return q, validation("to", "must be after from")
	}
	props := v["prop"]
	if len(props) > maxPropConds {
		return q, validation("prop", fmt.Sprintf("at most %d conditions", maxPropConds))
	}
	for _, p := range props {
		c, reason := parseProp(p)
		if reason != "" {
			return q, validation("prop", reason)
		}
		q.Props = append(q.Props, c)
	}
	return q, nil
}

// parseProp reads a property condition, FIELD.PATH:VALUE: FIELD is metadata, payload or
// properties (the payload, as Segment and PostHog call it), PATH object keys separated by
// dots. It returns why p is refused, or "".
func parseProp(p string) (store.PropCond, string) {
	if len(p) > maxParamLen {
		return store.PropCond{}, fmt.Sprintf("must be at most %d bytes", maxParamLen)
	}
	path, value, ok := strings.Cut(p, ":")
	if !ok {
		return store.PropCond{}, "must be FIELD.PATH:VALUE, such as metadata.page:/home"
	}
	keys := strings.Split(path, ".")
	c := store.PropCond{Field: keys[0], Path: keys[1:], Value: value}
	switch c.Field {
	case "metadata", "payload":
	case "properties":
		c.Field = "payload"
	default:
		return c, "must start with metadata., payload. or properties."
	}
	if len(c.Path) == 0 || len(c.Path) > maxPropDepth {
		return c, fmt.Sprintf("must name 1 to %d keys after the field", maxPropDepth)
	}
	for _, k := range c.Path {
		if k == "" || strings.ContainsAny(k, "\"\\$\x00") {
			return c, "keys must be non-empty and hold no \", \\, $ or NUL"
		}
	}
	return c, ""
}

// maxCursorLen is the longest cursor: a position whose key is the longest eventId (a
// MongoDB store's key), 4 bytes a character.
var maxCursorLen = base64.RawURLEncoding.EncodedLen(16 + 4*event.MaxIDLen)

// filterHash ties a cursor to the filters it was made for (not the time range: a preset
// range moves with the clock between pages).
func filterHash(q *store.EventQuery) uint64 {
	h := fnv.New64a()
	for _, s := range []string{q.EventType, q.UserID, q.SessionID} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	for _, p := range q.Props {
		fmt.Fprintf(h, "%s|%q|%d:%s", p.Field, p.Path, len(p.Value), p.Value)
	}
	return h.Sum64()
}

// encodeCursor writes a position and the filters' hash as URL-safe text.
func encodeCursor(p *store.Position, q *store.EventQuery) string {
	b := binary.BigEndian.AppendUint64(nil, uint64(p.TS))
	b = binary.BigEndian.AppendUint64(b, filterHash(q))
	return base64.RawURLEncoding.EncodeToString(append(b, p.Key...))
}

// decodeCursor reads a cursor encodeCursor made for the same filters.
func decodeCursor(c string, q *store.EventQuery) (*store.Position, *Error) {
	bad := validation("cursor", "is not a cursor of this query (it comes from nextCursor, with the same filters)")
	if len(c) > maxCursorLen {
		return nil, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 16 || binary.BigEndian.Uint64(b[8:]) != filterHash(q) {
		return nil, bad
	}
	return &store.Position{TS: int64(binary.BigEndian.Uint64(b)), Key: string(b[16:])}, nil
}

// listEvents is GET /api/v1/events.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) *Error {
	v := r.URL.Query()
	q, e := eventQuery(v, time.Now())
	if e != nil {
		return e
	}
	q.Limit = eventPageDefault
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > eventPageMax {
			return validation("limit", fmt.Sprintf("must be a whole number from 1 to %d", eventPageMax))
		}
		q.Limit = n
	}
	if c := v.Get("cursor"); c != "" {
		if q.After, e = decodeCursor(c, &q); e != nil {
			return e
		}
	}
	q.Budget = eventPageBudget
	release, e := s.searchSlot(r)
	if e != nil {
		return e
	}
	defer release()
	page := eventPage{Events: make([]store.StoredEvent, 0, min(q.Limit, 64))}
	size := 0
	next, err := s.Reading.Events.ScanEvents(r.Context(), q, func(ev *store.StoredEvent) bool {
		page.Events = append(page.Events, *ev)
		size += len(ev.Metadata) + len(ev.Payload) + 256
		return size < eventPageBytes
	})
	if err != nil {
		return s.eventsFailed(r, err)
	}
	if next != nil {
		page.NextCursor = encodeCursor(next, &q)
	}
	writeData(w, http.StatusOK, page)
	return nil
}

// getEvent is GET /api/v1/events/{eventId}.
func (s *Server) getEvent(w http.ResponseWriter, r *http.Request) *Error {
	id := r.PathValue("eventId")
	if len(id) > maxParamLen {
		return validation("eventId", fmt.Sprintf("must be at most %d bytes", maxParamLen))
	}
	release, e := s.searchSlot(r)
	if e != nil {
		return e
	}
	defer release()
	ev, err := s.Reading.Events.GetEvent(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "NOT_FOUND", "no stored event has the id %q", id)
	}
	if err != nil {
		return s.eventsFailed(r, err)
	}
	writeData(w, http.StatusOK, ev)
	return nil
}

// searchSlot waits for one of the places of the searches running at once, at most
// searchWait; release frees it.
func (s *Server) searchSlot(r *http.Request) (release func(), e *Error) {
	t := time.NewTimer(searchWait)
	defer t.Stop()
	select {
	case s.searches <- struct{}{}:
		return func() { <-s.searches }, nil
	case <-t.C:
		return nil, errUnavailable("%d searches of the stored events are running, the most evp runs at once; retry shortly", searchesAtOnce)
	case <-r.Context().Done():
		return nil, errUnavailable("the client went away")
	}
}

// eventsFailed answers a store that could not be read (unless the client went away).
func (s *Server) eventsFailed(r *http.Request, err error) *Error {
	if r.Context().Err() == nil {
		s.log.Error("reading events failed", "request_id", RequestID(r.Context()), "err", err)
	}
	return errUnavailable("the event store could not be read; retry shortly")
}

// exportEvents is GET /api/v1/events/export: every matching event, newest first, as NDJSON
// (one event per line, as GET /api/v1/events shows it) or CSV, streamed as the store reads
// them. A failure after the first byte aborts the response, so that a client sees a broken
// transfer, never a short file that looks whole.
func (s *Server) exportEvents(w http.ResponseWriter, r *http.Request) *Error {
	v := r.URL.Query()
	q, e := eventQuery(v, time.Now())
	if e != nil {
		return e
	}
	format := v.Get("format")
	if format == "" {
		format = "ndjson"
	}
	if format != "ndjson" && format != "csv" {
		return validation("format", "must be ndjson or csv")
	}
	select {
	case s.exports <- struct{}{}:
		defer func() { <-s.exports }()
	default:
		e := errorf(http.StatusTooManyRequests, "TOO_MANY_EXPORTS", "%d exports are running; retry when one ends", exportsAtOnce)
		e.RetryAfter = 10
		return e
	}
	if r.Method == http.MethodHead { // the headers only: not a whole export for nothing
		return nil
	}
	ctl := http.NewResponseController(w)
	name := "evp-events-" + time.Now().UTC().Format("20060102T150405Z") + "." + format
	h := w.Header()
	if format == "csv" {
		h.Set("Content-Type", "text/csv; charset=utf-8")
	} else {
		h.Set("Content-Type", "application/x-ndjson")
	}
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("Cache-Control", "no-store")
	// The status goes with the first bytes written: until then a failure is answered as
	// an error.
	out := &countingWriter{w: w, ctl: ctl}
	bw := bufio.NewWriterSize(out, 64<<10)
	write := ndjsonWriter(bw)
	if format == "csv" {
		write = csvWriter(bw)
	}
	var werr error
	n := 0
	flushed := time.Now()
	_, err := s.Reading.Events.ScanEvents(r.Context(), q, func(ev *store.StoredEvent) bool {
		if werr = write(ev); werr != nil {
			return false
		}
		// A sparse filter may find an event a minute: what it found goes out within a
		// second of the next, not when 64 KiB are buffered.
		n++
		if time.Since(flushed) > time.Second {
			if werr = bw.Flush(); werr == nil {
				werr = ctl.Flush()
			}
			flushed = time.Now()
		}
		return werr == nil
	})
	if err != nil && out.n == 0 {
		h.Del("Content-Disposition")
		return s.eventsFailed(r, err)
	}
	if err == nil && werr == nil {
		werr = bw.Flush()
	}
	if err != nil || werr != nil {
		if r.Context().Err() == nil {
			s.log.Error("export failed", "request_id", RequestID(r.Context()), "events", n, "err", errors.Join(err, werr))
		}
		panic(http.ErrAbortHandler)
	}
	return nil
}

// countingWriter counts the bytes written through it, and gives each write to the client
// exportStall to go through: a client that keeps reading keeps the export going, however
// long the store takes between writes.
type countingWriter struct {
	w   io.Writer
	ctl *http.ResponseController
	n   int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	_ = c.ctl.SetWriteDeadline(time.Now().Add(exportStall))
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ndjsonWriter writes an event per line: the event's own encoding with processedAt.
func ndjsonWriter(w *bufio.Writer) func(*store.StoredEvent) error {
	var line []byte
	return func(ev *store.StoredEvent) error {
		b, err := event.Marshal(&ev.Event)
		if err != nil {
			return err
		}
		line = append(line[:0], b[:len(b)-1]...)
		line = append(line, `,"processedAt":"`...)
		line = ev.ProcessedAt.AppendFormat(line, time.RFC3339Nano)
		line = append(line, "\"}\n"...)
		_, err = w.Write(line)
		return err
	}
}

// csvHeader names the export's CSV columns; metadata and payload are JSON text.
var csvHeader = []string{"eventId", "eventType", "userId", "sessionId", "timestamp", "priority", "source", "receivedAt", "processedAt", "metadata", "payload"}

// csvTextCells are the columns a client wrote freely (metadata and payload start with {).
var csvTextCells = []int{0, 1, 2, 3, 6}

// csvWriter writes the header at once, then a row per event. A text cell a spreadsheet
// would run as a formula (it starts with =, +, -, @, tab or CR) gets a leading ' : exported
// events come from anyone who can send one.
func csvWriter(w *bufio.Writer) func(*store.StoredEvent) error {
	cw := csv.NewWriter(w)
	_ = cw.Write(csvHeader) // into w's buffer; a failure shows at the first row
	row := make([]string, len(csvHeader))
	return func(ev *store.StoredEvent) error {
		row = append(row[:0], ev.EventID, ev.EventType, ev.UserID, ev.SessionID,
			ev.Timestamp.Format(time.RFC3339Nano), strconv.Itoa(ev.Priority), ev.Source,
			ev.ReceivedAt.Format(time.RFC3339Nano), ev.ProcessedAt.Format(time.RFC3339Nano),
			string(ev.Metadata), string(ev.Payload))
		for _, i := range csvTextCells {
			if c := row[i]; c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
				row[i] = "'" + c
			}
		}
		if err := cw.Write(row); err != nil {
			return err
		}
		cw.Flush()
		return cw.Error()
	}
}
