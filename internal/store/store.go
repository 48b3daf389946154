// Package store defines where processed events end up.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/evp-dev/evp/internal/event"
)

// DeadLetter is an event (or undecodable buffer entry) that could not be stored, kept with
// the reason so that an operator can inspect and replay it.
type DeadLetter struct {
	EventID string // empty when the entry could not be decoded
	Data    []byte // the buffer entry exactly as it was
	Error   string
	// Attempts counts tries to process the entry: one for each earlier delivery, plus, for
	// the delivery that gave up, the store attempts it made (worker MaxAttempts) or one for
	// an entry that could not be decoded (none for an entry delivered too often).
	Attempts int
	FailedAt time.Time
}

// Resident is a store that keeps data in memory for as long as it is open, growing with
// the events it stores (the embedded store's analytics engine): the process's memory limit
// leaves room for it.
type Resident interface {
	// ResidentBytes is about how much memory that data takes now.
	ResidentBytes() int64
}

// EventStore keeps events exactly once.
//
// InsertBatch writes the batch in one operation that is idempotent on EventID: events whose
// id is already stored are skipped and counted as duplicates, never stored twice. It returns
// only after the write is durable. An error means nothing of the batch may be assumed
// written; a retry is safe. All methods are safe for concurrent use.
type EventStore interface {
	InsertBatch(ctx context.Context, events []event.Event, processedAt time.Time) (inserted, duplicates int, err error)
	DeadLetter(ctx context.Context, letters []DeadLetter) error
	// Count returns how many events are stored.
	Count(ctx context.Context) (int64, error)
	// DeadLetterCount returns how many entries the dead-letter queue holds.
	DeadLetterCount(ctx context.Context) (int64, error)
	// RecentEventIDs calls fn with the id of every event received at or after since, newest
	// first, at most limit of them (0: no limit).
	RecentEventIDs(ctx context.Context, since time.Time, limit int, fn func(eventID string, receivedAt time.Time)) error
	Ping(ctx context.Context) error
	Close() error
}

// ErrNotFound is returned when a requested record does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrInvalidCursor is returned by ListDeadLetters for a cursor it did not hand out.
var ErrInvalidCursor = errors.New("store: invalid cursor")

// StoredDeadLetter is a dead letter as kept by the store, with the id operators use to
// address it.
type StoredDeadLetter struct {
	ID string `json:"id"`
	DeadLetter
}

// DeadLetters lets operators inspect and clean the dead-letter queue. Replay is done by the
// caller: it appends Data back to the buffer under the same EventID (so the store's
// idempotency makes a replay safe to repeat) and then deletes the letter.
type DeadLetters interface {
	// ListDeadLetters returns up to limit letters, newest first, starting after the cursor
	// (empty: from the newest). next is the cursor of the following page, empty at the end.
	// A cursor that is not one it handed out gives ErrInvalidCursor.
	ListDeadLetters(ctx context.Context, cursor string, limit int) (letters []StoredDeadLetter, next string, err error)
	// GetDeadLetter returns one letter or ErrNotFound.
	GetDeadLetter(ctx context.Context, id string) (StoredDeadLetter, error)
	// DeleteDeadLetters removes the letters with these ids and returns how many existed.
	DeleteDeadLetters(ctx context.Context, ids []string) (int, error)
}

// TypeCounter reports all-time event counts per event type (GET /api/metrics eventsByType),
// kept by the store as it inserts.
type TypeCounter interface {
	CountByType(ctx context.Context) (map[string]int64, error)
}

// Analyzer answers analytics queries from the rollups the store maintains as it inserts.
//
// Analytics computes every figure of one result from one consistent state: its counts,
// series, distinct users and sessions and top users all cover the same set of stored
// events (which holds every event stored before the call), never counts of some events
// with distinct counts or top users of fewer or more. So a result may be cached and served
// as a whole. A result the store cannot vouch for so (its figures were read while a write
// was under way) has Unsettled set, and is not cached.
type Analyzer interface {
	Analytics(ctx context.Context, q AnalyticsQuery) (AnalyticsResult, error)
}

// AnalyticsQuery asks for analytics over [Start, End). Start and End are whole minutes and
// Bucket is a whole number of minutes that divides End-Start.
type AnalyticsQuery struct {
	Start, End time.Time
	Bucket     time.Duration
	EventType  string // exact match; empty: every type
	UserID     string // case-insensitive substring; empty: every user
}

// AnalyticsResult answers an AnalyticsQuery. Counts are exact; UniqueUsers and
// UniqueSessions (and so AvgEventsPerUser) may be HyperLogLog estimates (about 0.8 % error).
type AnalyticsResult struct {
	TotalEvents      int64         `json:"totalEvents"`
	EventsByType     []TypeCount   `json:"eventsByType"`
	TopUsers         []TopUser     `json:"topUsers"`
	EventsOverTime   []BucketCount `json:"eventsOverTime"`
	AvgEventsPerUser float64       `json:"avgEventsPerUser"`
	UniqueUsers      int64         `json:"uniqueUsers"`
	UniqueSessions   int64         `json:"uniqueSessions"`
	// Unsettled reports that a write was under way while the figures were read, so that
	// they may disagree with one another by the events of that write: serve the result,
	// but do not cache it.
	Unsettled bool `json:"-"`
}

// TypeCount is one event type's share.
type TypeCount struct {
	EventType  string  `json:"eventType"`
	Count      int64   `json:"count"`
	Percentage float64 `json:"percentage"`
}

// TopUser is one of the most active users.
type TopUser struct {
	UserID      string    `json:"userId"`
	EventCount  int64     `json:"eventCount"`
	LastEventAt time.Time `json:"lastEventAt"`
	EventTypes  []string  `json:"eventTypes"`
}

// BucketCount is the number of events in the bucket starting at Timestamp.
type BucketCount struct {
	Timestamp time.Time `json:"timestamp"`
	Count     int64     `json:"count"`
}
