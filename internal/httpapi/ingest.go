package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/queue"
)

type eventAnswer struct {
	EventID   string `json:"eventId"`
	Accepted  bool   `json:"accepted"`
	Duplicate bool   `json:"duplicate"`
	Message   string `json:"message"`
}

// writeEventAnswer answers a single event as writeData(w, status, a) would, without
// reflection.
func writeEventAnswer(w http.ResponseWriter, status int, a eventAnswer) {
	p := answerPool.Get().(*[]byte)
	b := append((*p)[:0], `{"success":true,"data":{"eventId":`...)
	b = event.AppendString(b, a.EventID)
	b = append(b, `,"accepted":`...)
	b = strconv.AppendBool(b, a.Accepted)
	b = append(b, `,"duplicate":`...)
	b = strconv.AppendBool(b, a.Duplicate)
	b = append(b, `,"message":`...)
	b = event.AppendString(b, a.Message)
	b = append(b, "}}\n"...)
	writeBody(w, status, b)
	if cap(b) <= 4<<10 {
		*p = b
		answerPool.Put(p)
	}
}

var answerPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

type batchAnswer struct {
	Accepted   int      `json:"accepted"`
	Duplicates int      `json:"duplicates"`
	Total      int      `json:"total"`
	EventIDs   []string `json:"eventIds"`
	Message    string   `json:"message"`
}

func decodeError(err error) *Error {
	var se *event.SyntaxError
	if errors.As(err, &se) {
		return errorf(http.StatusBadRequest, "INVALID_JSON", "request body is not valid JSON: %s", se.Msg)
	}
	var ve *event.ValidationError
	if errors.As(err, &ve) {
		return &Error{Status: http.StatusBadRequest, Code: "VALIDATION_ERROR", Message: "validation failed: " + ve.Error(), Details: ve.Fields}
	}
	return errorf(http.StatusBadRequest, "VALIDATION_ERROR", "%v", err)
}

// postEvent is POST /api/v1/events.
func (s *Server) postEvent(w http.ResponseWriter, r *http.Request) *Error {
	if !s.ready.Load() {
		return errUnavailable("evp is not ready or is shutting down")
	}
	hold := bodyHold{b: s.budget}
	defer hold.release()
	buf, e := readBody(r, s.Ingestion.MaxBodyBytes, &hold)
	if e != nil {
		return e
	}
	ev, err := event.DecodeOne(buf.Bytes(), time.Now().UTC())
	releaseBody(buf)
	if err != nil {
		return decodeError(err)
	}
	events := []event.Event{ev}
	added, e := s.accept(r, events)
	if e != nil {
		return e
	}
	if !added[0] {
		writeEventAnswer(w, http.StatusOK, eventAnswer{EventID: ev.EventID, Duplicate: true, Message: "Event already processed (duplicate)"})
		return nil
	}
	writeEventAnswer(w, http.StatusAccepted, eventAnswer{EventID: ev.EventID, Accepted: true, Message: "Event accepted for processing"})
	return nil
}

// postBatch is POST /api/v1/events/batch. A repeated eventId, whether seen before, twice in
// the same batch, or in a concurrent request, counts as a duplicate and is buffered once.
func (s *Server) postBatch(w http.ResponseWriter, r *http.Request) *Error {
	if !s.ready.Load() {
		return errUnavailable("evp is not ready or is shutting down")
	}
	hold := bodyHold{b: s.budget}
	defer hold.release()
	buf, e := readBody(r, s.Ingestion.MaxBodyBytes, &hold)
	if e != nil {
		return e
	}
	events, err := event.DecodeBatch(buf.Bytes(), time.Now().UTC())
	releaseBody(buf)
	if err != nil {
		return decodeError(err)
	}
	added, e := s.accept(r, events)
	if e != nil {
		return e
	}
	accepted := make([]string, 0, len(events))
	for i, ok := range added {
		if ok {
			accepted = append(accepted, events[i].EventID)
		}
	}
	writeData(w, http.StatusAccepted, batchAnswer{
		Accepted: len(accepted), Duplicates: len(events) - len(accepted), Total: len(events),
		EventIDs: accepted, Message: "Batch processed successfully",
	})
	return nil
}

// accept buffers the events whose ids are new and records those ids in the dedup window:
// added[i] reports whether events[i] was buffered, or is a duplicate (seen before, earlier
// in events, or buffered by a concurrent request). It counts both kinds. An id is recorded
// only once its event is durable.
func (s *Server) accept(r *http.Request, events []event.Event) (added []bool, e *Error) {
	if s.Ingestion.UniqueQueue != nil {
		added, e = s.enqueueUnique(r, events)
	} else {
		added, e = s.enqueueNew(r, events)
	}
	if e != nil {
		return nil, e
	}
	n := 0
	for _, ok := range added {
		if ok {
			n++
		}
	}
	s.countAccepted(int64(n))
	s.countIngest(n, len(events)-n)
	return added, nil
}

// enqueueNew buffers the events whose ids admit gives this request, then records them as
// seen (Dedup, then Queue.Enqueue, then Dedup.Add), and reports which it buffered.
func (s *Server) enqueueNew(r *http.Request, events []event.Event) ([]bool, *Error) {
	ids := make([]string, len(events))
	for i := range events {
		ids[i] = events[i].EventID
	}
	mine, err := s.admit(r.Context(), ids)
	if err != nil {
		s.log.Error("dedup check failed", "request_id", RequestID(r.Context()), "err", err)
		return nil, errUnavailable("the dedup store is unavailable; retry shortly")
	}
	n := 0
	for _, m := range mine {
		if m {
			n++
		}
	}
	if n == 0 {
		return mine, nil // nothing claimed, nothing to buffer
	}
	defer s.done(ids, mine)
	entries := make([]queue.Entry, 0, n)
	for i := range events {
		if mine[i] {
			data, err := event.Marshal(&events[i])
			if err != nil {
				return nil, encodeFailed(i, len(events))
			}
			entries = append(entries, queue.Entry{EventID: ids[i], Data: data, Event: &events[i]})
		}
	}
	if err := s.Ingestion.Queue.Enqueue(r.Context(), entries); err != nil {
		return nil, s.appendFailed(r, n, err)
	}
	s.Reading.Tails.Publish(entries)
	buffered := ids
	if n < len(ids) {
		buffered = make([]string, 0, n)
		for _, e := range entries {
			buffered = append(buffered, e.EventID)
		}
	}
	s.markSeen(r, buffered)
	return mine, nil
}

// markSeen records buffered ids in the dedup window. The events are already durable, so a
// failure here is only logged: a client retry would be buffered again, and the store's
// unique event id keeps it from being stored twice.
func (s *Server) markSeen(r *http.Request, ids []string) {
	if err := s.Ingestion.Dedup.Add(r.Context(), ids); err != nil {
		s.log.Warn("dedup record failed; a retry of these events will be deduplicated by the store", "request_id", RequestID(r.Context()), "events", len(ids), "err", err)
	}
}

func (s *Server) countIngest(accepted, duplicates int) {
	if s.Serving.Metrics != nil {
		s.Serving.Metrics.Ingested.Add(float64(accepted))
		s.Serving.Metrics.Duplicates.Add(float64(duplicates))
	}
}

// enqueueUnique buffers the events whose ids are new and records them in the dedup window,
// in one step (UniqueQueue), and reports which were buffered.
func (s *Server) enqueueUnique(r *http.Request, events []event.Event) ([]bool, *Error) {
	entries := make([]queue.Entry, len(events))
	for i := range events {
		data, err := event.Marshal(&events[i])
		if err != nil {
			return nil, encodeFailed(i, len(events))
		}
		entries[i] = queue.Entry{EventID: events[i].EventID, Data: data, Event: &events[i]}
	}
	added, err := s.Ingestion.UniqueQueue.EnqueueUnique(r.Context(), entries)
	if err != nil {
		return nil, s.appendFailed(r, len(entries), err)
	}
	if s.Reading.Tails.Open() > 0 {
		fresh := entries[:0:0]
		for i, ok := range added {
			if ok {
				fresh = append(fresh, entries[i])
			}
		}
		s.Reading.Tails.Publish(fresh)
	}
	return added, nil
}

// encodeFailed answers event i of n that could not be encoded for the buffer.
func encodeFailed(i, n int) *Error {
	if n == 1 {
		return errorf(http.StatusInternalServerError, "INGESTION_ERROR", "could not encode the event")
	}
	return errorf(http.StatusInternalServerError, "INGESTION_ERROR", "could not encode event %d", i)
}

// appendFailed answers an append the buffer refused or failed: 503 either way, naming the
// bound when the buffer is full (queue.ErrFull).
func (s *Server) appendFailed(r *http.Request, events int, err error) *Error {
	if errors.Is(err, queue.ErrFull) {
		// Expected under overload, and shown by /api/health and the fill gauge: not an error.
		s.log.Debug("buffer full: events refused", "request_id", RequestID(r.Context()), "events", events, "err", err)
		detail := strings.TrimPrefix(err.Error(), queue.ErrFull.Error()+": ")
		return errUnavailable("the ingestion buffer is full: %s; retry once the workers have caught up", detail)
	}
	s.log.Error("buffer append failed", "request_id", RequestID(r.Context()), "events", events, "err", err)
	return errUnavailable("the ingestion buffer cannot take events right now; retry shortly")
}
