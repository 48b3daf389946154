package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/jsonobj"
)

// StoredEvent is an event as the store keeps it: the event, when it was stored, and its
// place in the order events are read in.
type StoredEvent struct {
	event.Event
	ProcessedAt time.Time `json:"processedAt"`
	Pos         Position  `json:"-"`
}

// Position is a place in the order events are read in: event time, newest first, and
// among events of the same time, the newest stored first. What comes after a Position is
// every event older than TS, and, when Key is set, the events at TS whose store key is
// below Key (a row number in the embedded store, the _id in MongoDB).
type Position struct {
	TS  int64  // event time, Unix ns
	Key string // the store's tie-breaker; empty: none at TS come after
}

// PropCond is a condition on one property of an event's metadata or payload: the value at
// Path, a string equal to Value, or a number or boolean whose JSON text is Value.
type PropCond struct {
	Field string   // "metadata" or "payload"
	Path  []string // object keys from the field's root
	Value string
}

// EventQuery selects stored events: every condition set must hold.
type EventQuery struct {
	From, To  time.Time // event time in [From, To); zero: unbounded
	EventType string    // exact
	UserID    string    // exact
	SessionID string    // exact
	Props     []PropCond
	// Limit is the most events a scan returns (0: no limit).
	Limit int
	// After continues a scan where an earlier one stopped (nil: from the newest event).
	After *Position
	// Budget is how long a scan may read before it stops with what it found and where to
	// continue (0: no bound). It is checked between hours, so a scan may run over it by
	// the time one hour of events takes.
	Budget time.Duration
}

// EventReader reads stored events: the events explorer and export.
type EventReader interface {
	// ScanEvents calls fn with the events matching q in the read order, after q.After,
	// until fn returns false, q.Limit events were given or q.Budget is spent. next is
	// where to continue, or nil when no matching event is left.
	ScanEvents(ctx context.Context, q EventQuery, fn func(*StoredEvent) bool) (next *Position, err error)
	// GetEvent returns the event with this id, or ErrNotFound.
	GetEvent(ctx context.Context, eventID string) (StoredEvent, error)
}

// EventRange is what a store provides to ScanHours: where its events are, a range of
// event time at a time. A bucket is a span of event time that the store reads in one go
// (an hour, as its index groups them).
type EventRange interface {
	// PrevBucket returns the event time span [lo, hi) of the newest bucket holding events
	// with a time in [from, before), ok false when there is none.
	PrevBucket(ctx context.Context, from, before int64) (lo, hi int64, ok bool, err error)
	// ScanRange calls fn, in the read order, with the events with a time in [lo, hi) that
	// match q and come after q.After (when set), until fn returns false; limit (when above
	// 0) is how many fn can take at most.
	ScanRange(ctx context.Context, lo, hi int64, q *EventQuery, limit int, fn func(*StoredEvent) bool) error
}

// ScanHours implements EventReader.ScanEvents over a store's EventRange: bucket by bucket
// from the newest, so that a store sorts one bucket at a time, never the whole range.
func ScanHours(ctx context.Context, r EventRange, q EventQuery, fn func(*StoredEvent) bool) (*Position, error) {
	from, before := int64(math.MinInt64), int64(math.MaxInt64)
	if !q.From.IsZero() {
		from = q.From.UnixNano()
	}
	if !q.To.IsZero() {
		before = q.To.UnixNano()
	}
	if a := q.After; a != nil {
		at := a.TS
		if a.Key != "" && at < math.MaxInt64 {
			at++ // events at TS itself may still come
		}
		before = min(before, at)
	}
	var deadline time.Time
	if q.Budget > 0 {
		deadline = time.Now().Add(q.Budget)
	}
	given := 0
	var last *StoredEvent
	more := false
	take := func(e *StoredEvent) bool {
		if q.Limit > 0 && given == q.Limit {
			more = true
			return false
		}
		given++
		last = e
		if !fn(e) {
			more = true // the caller stopped: it may continue after this one
			return false
		}
		return true
	}
	for from < before {
		lo, hi, ok, err := r.PrevBucket(ctx, from, before)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, nil
		}
		if lo >= before {
			return nil, fmt.Errorf("store: events: the bucket before %d starts at %d", before, lo)
		}
		limit := 0
		if q.Limit > 0 {
			limit = q.Limit - given + 1 // one more tells whether any is left
		}
		if err := r.ScanRange(ctx, max(lo, from), min(hi, before), &q, limit, take); err != nil {
			return nil, err
		}
		if more {
			p := last.Pos
			return &p, nil
		}
		before = lo
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !deadline.IsZero() && time.Now().After(deadline) && from < before {
			return &Position{TS: before}, nil
		}
	}
	return nil, nil
}

// Matches reports whether e meets q's conditions (not its limit, position or budget) as
// the stores read them: for the live tail, which sees events before any store holds them.
func Matches(e *event.Event, q *EventQuery) bool {
	if !q.From.IsZero() && e.Timestamp.Before(q.From) || !q.To.IsZero() && !e.Timestamp.Before(q.To) {
		return false
	}
	if q.EventType != "" && e.EventType != q.EventType || q.UserID != "" && e.UserID != q.UserID ||
		q.SessionID != "" && e.SessionID != q.SessionID {
		return false
	}
	for _, p := range q.Props {
		v := []byte(e.Metadata)
		if p.Field == "payload" {
			v = e.Payload
		}
		for _, k := range p.Path {
			if v = jsonobj.Find(v, k); v == nil {
				return false
			}
		}
		if !propEquals(v, p.Value) {
			return false
		}
	}
	return true
}

// propEquals reports whether the JSON value v is the string want, the number want reads
// as, or the boolean it names.
func propEquals(v []byte, want string) bool {
	switch {
	case len(v) == 0:
		return false
	case v[0] == '"':
		s, ok := jsonobj.String(v)
		return ok && s == want
	case string(v) == "true" || string(v) == "false":
		return string(v) == want
	case v[0] == '-' || v[0] >= '0' && v[0] <= '9':
		a, err1 := strconv.ParseFloat(string(v), 64)
		b, err2 := strconv.ParseFloat(want, 64)
		return err1 == nil && err2 == nil && a == b
	}
	return false
}

// Forgetter erases one user's events on request (privacy law's right to erasure).
type Forgetter interface {
	// ForgetUser deletes every event of userID (exact) stored before the call from the
	// events and from the analytics, which no longer count them once it returns, and the
	// dead letters holding one (ForgetDeadLetters), and returns how many of both it deleted.
	ForgetUser(ctx context.Context, userID string) (int64, error)
}

// forgetLetterPage is how many dead letters ForgetDeadLetters reads at a time.
const forgetLetterPage = 500

// ForgetDeadLetters deletes from dl the letters holding an event of user (exact userId),
// and those that do not decode but hold "userId": and the id as JSON writes it, and
// returns how many it deleted: a store's ForgetUser calls it, so that an erasure reaches
// events that failed to be stored too.
func ForgetDeadLetters(ctx context.Context, dl DeadLetters, user string) (int, error) {
	if user == "" {
		return 0, nil
	}
	quoted, _ := json.Marshal(user)
	field := append([]byte(`"userId":`), quoted...)
	deleted, cursor := 0, ""
	for {
		page, next, err := dl.ListDeadLetters(ctx, cursor, forgetLetterPage)
		if err != nil {
			return deleted, err
		}
		var ids []string
		for _, l := range page {
			var ev event.Event
			if err := event.Unmarshal(l.Data, &ev); err == nil && ev.UserID == user ||
				err != nil && bytes.Contains(l.Data, field) {
				ids = append(ids, l.ID)
			}
		}
		if len(ids) > 0 {
			n, err := dl.DeleteDeadLetters(ctx, ids)
			deleted += n
			if err != nil {
				return deleted, err
			}
		}
		if next == "" {
			return deleted, nil
		}
		cursor = next
	}
}
