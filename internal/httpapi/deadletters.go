package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/store"
)

// Dead-letter management: operators list, inspect, replay and delete the entries the workers
// could not store. A replay appends the entry back to the buffer under its eventId and then
// deletes the letter; the store is idempotent on eventId, so replaying the same letter twice
// (or a letter whose event was stored meanwhile) stores it once.

const (
	deadLetterPageDefault = 50
	deadLetterPageMax     = 100
	// replayAllPage is how many letters one step of a replay-all reads, appends and deletes.
	replayAllPage = 100
)

// deadLetterItem is one letter as the API shows it. Event is the original event when the
// stored entry decodes; otherwise Raw holds the entry as text.
type deadLetterItem struct {
	ID         string       `json:"id"`
	EventID    *string      `json:"eventId"`
	Error      string       `json:"error"`
	Attempts   int          `json:"attempts"`
	FailedAt   time.Time    `json:"failedAt"`
	Replayable bool         `json:"replayable"`
	Event      *event.Event `json:"event,omitempty"`
	Raw        *string      `json:"raw,omitempty"`
}

type deadLetterPage struct {
	Items      []deadLetterItem `json:"items"`
	NextCursor *string          `json:"nextCursor"`
	Total      int64            `json:"total"`
}

type deadLetterReplayed struct {
	ID       string `json:"id"`
	EventID  string `json:"eventId"`
	Replayed bool   `json:"replayed"`
}

type deadLetterReplayAll struct {
	Replayed int `json:"replayed"`
	Skipped  int `json:"skipped"`
}

type deadLetterDeleted struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}

// replayable decodes a letter's entry the way a worker does. It returns the event and the
// id to replay it under, or ok false when the entry cannot be decoded into an event with an
// id (a replay would only dead-letter it again).
func replayable(l store.StoredDeadLetter) (ev event.Event, eventID string, ok bool) {
	if err := event.Unmarshal(l.Data, &ev); err != nil || ev.EventID == "" {
		return event.Event{}, "", false
	}
	// The event must also be showable: its JSON parts survive encoding.
	if _, err := json.Marshal(&ev); err != nil {
		return event.Event{}, "", false
	}
	eventID = l.EventID
	if eventID == "" {
		eventID = ev.EventID
	}
	return ev, eventID, true
}

func toItem(l store.StoredDeadLetter) deadLetterItem {
	it := deadLetterItem{ID: l.ID, Error: l.Error, Attempts: l.Attempts, FailedAt: l.FailedAt.UTC()}
	if ev, id, ok := replayable(l); ok {
		it.Event, it.Replayable = &ev, true
		it.EventID = &id
		return it
	}
	if l.EventID != "" {
		id := l.EventID
		it.EventID = &id
	}
	raw := string(l.Data)
	it.Raw = &raw
	return it
}

// deadLetterCounter is what the store offers to count the queue (every store.EventStore).
type deadLetterCounter interface {
	DeadLetterCount(ctx context.Context) (int64, error)
}

func (s *Server) deadLetterStoreError(r *http.Request, what string, err error) *Error {
	s.log.Error("dead letters: "+what+" failed", "request_id", RequestID(r.Context()), "err", err)
	return errorf(http.StatusInternalServerError, "INTERNAL_ERROR", "could not %s", what)
}

func deadLetterNotFound(id string) *Error {
	return errorf(http.StatusNotFound, "NOT_FOUND", "no dead letter with id %q", id)
}

// listDeadLetters is GET /api/v1/dead-letters?cursor=&limit=.
func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) *Error {
	v := r.URL.Query()
	limit := deadLetterPageDefault
	if raw := v.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > deadLetterPageMax {
			return validation("limit", "must be an integer from 1 to 100")
		}
		limit = n
	}
	letters, next, err := s.Reading.DeadLetters.ListDeadLetters(r.Context(), v.Get("cursor"), limit)
	if errors.Is(err, store.ErrInvalidCursor) {
		return validation("cursor", "must be a nextCursor returned by this route")
	}
	if err != nil {
		return s.deadLetterStoreError(r, "list the dead-letter queue", err)
	}
	page := deadLetterPage{Items: make([]deadLetterItem, 0, len(letters)), Total: -1}
	for _, l := range letters {
		page.Items = append(page.Items, toItem(l))
	}
	if next != "" {
		page.NextCursor = &next
	}
	if c, ok := s.Reading.DeadLetters.(deadLetterCounter); ok {
		if page.Total, err = c.DeadLetterCount(r.Context()); err != nil {
			return s.deadLetterStoreError(r, "count the dead-letter queue", err)
		}
	}
	writeData(w, http.StatusOK, page)
	return nil
}

// getDeadLetter is GET /api/v1/dead-letters/{id}.
func (s *Server) getDeadLetter(w http.ResponseWriter, r *http.Request) *Error {
	id := r.PathValue("id")
	l, err := s.Reading.DeadLetters.GetDeadLetter(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return deadLetterNotFound(id)
	}
	if err != nil {
		return s.deadLetterStoreError(r, "read the dead letter", err)
	}
	writeData(w, http.StatusOK, toItem(l))
	return nil
}

// replayDeadLetter is POST /api/v1/dead-letters/{id}/replay: back into the buffer under the
// same eventId, then out of the dead-letter queue.
func (s *Server) replayDeadLetter(w http.ResponseWriter, r *http.Request) *Error {
	if !s.ready.Load() {
		return errUnavailable("evp is not ready or is shutting down")
	}
	id := r.PathValue("id")
	l, err := s.Reading.DeadLetters.GetDeadLetter(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return deadLetterNotFound(id)
	}
	if err != nil {
		return s.deadLetterStoreError(r, "read the dead letter", err)
	}
	_, eventID, ok := replayable(l)
	if !ok {
		return errorf(http.StatusConflict, "NOT_REPLAYABLE", "dead letter %s does not decode into an event with an eventId; inspect its raw entry and delete it", id)
	}
	if err := s.Ingestion.Queue.Enqueue(r.Context(), []queue.Entry{{EventID: eventID, Data: l.Data}}); err != nil {
		s.log.Error("dead letters: buffer append failed", "request_id", RequestID(r.Context()), "dead_letter", id, "err", err)
		return errUnavailable("the ingestion buffer cannot take events right now; retry shortly")
	}
	if _, err := s.Reading.DeadLetters.DeleteDeadLetters(r.Context(), []string{id}); err != nil {
		// The event is back in the buffer; replaying the letter again is harmless.
		return s.deadLetterStoreError(r, "remove the replayed dead letter (the event was replayed; replaying it again is harmless)", err)
	}
	s.log.Info("dead letter replayed", "request_id", RequestID(r.Context()), "dead_letter", id, "event_id", eventID)
	writeData(w, http.StatusOK, deadLetterReplayed{ID: id, EventID: eventID, Replayed: true})
	return nil
}

// replayAllDeadLetters is POST /api/v1/dead-letters/replay: every replayable letter present
// when it starts, page by page (each page appended in one buffer write, then deleted).
// Letters that do not decode are skipped and stay. Letters that fail again during the
// replay are newer than where it started and are not replayed a second time.
func (s *Server) replayAllDeadLetters(w http.ResponseWriter, r *http.Request) *Error {
	if !s.ready.Load() {
		return errUnavailable("evp is not ready or is shutting down")
	}
	var ans deadLetterReplayAll
	cursor := ""
	for {
		letters, next, err := s.Reading.DeadLetters.ListDeadLetters(r.Context(), cursor, replayAllPage)
		if err != nil {
			return s.deadLetterStoreError(r, "list the dead-letter queue", err)
		}
		entries := make([]queue.Entry, 0, len(letters))
		ids := make([]string, 0, len(letters))
		for _, l := range letters {
			_, eventID, ok := replayable(l)
			if !ok {
				ans.Skipped++
				continue
			}
			entries = append(entries, queue.Entry{EventID: eventID, Data: l.Data})
			ids = append(ids, l.ID)
		}
		if len(entries) > 0 {
			if err := s.Ingestion.Queue.Enqueue(r.Context(), entries); err != nil {
				s.log.Error("dead letters: buffer append failed", "request_id", RequestID(r.Context()),
					"entries", len(entries), "replayed_before", ans.Replayed, "err", err)
				return errUnavailable("the ingestion buffer cannot take events right now; %d letters were replayed before it failed, retry to replay the rest", ans.Replayed)
			}
			if _, err := s.Reading.DeadLetters.DeleteDeadLetters(r.Context(), ids); err != nil {
				return s.deadLetterStoreError(r, "remove replayed dead letters (they were replayed; replaying them again is harmless)", err)
			}
			ans.Replayed += len(entries)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	s.log.Info("dead letters replayed", "request_id", RequestID(r.Context()), "replayed", ans.Replayed, "skipped", ans.Skipped)
	writeData(w, http.StatusOK, ans)
	return nil
}

// deleteDeadLetter is DELETE /api/v1/dead-letters/{id}.
func (s *Server) deleteDeadLetter(w http.ResponseWriter, r *http.Request) *Error {
	id := r.PathValue("id")
	n, err := s.Reading.DeadLetters.DeleteDeadLetters(r.Context(), []string{id})
	if err != nil {
		return s.deadLetterStoreError(r, "delete the dead letter", err)
	}
	if n == 0 {
		return deadLetterNotFound(id)
	}
	s.log.Info("dead letter deleted", "request_id", RequestID(r.Context()), "dead_letter", id)
	writeData(w, http.StatusOK, deadLetterDeleted{ID: id, Deleted: true})
	return nil
}
