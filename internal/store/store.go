// Package store defines where processed events end up.
package store

import (
	"context"
	"time"

	"github.com/evp-dev/evp/internal/event"
)

// DeadLetter is an event (or undecodable buffer entry) that could not be stored, kept with
// the reason so that an operator can inspect and replay it.
type DeadLetter struct {
	EventID  string // empty when the entry could not be decoded
	Data     []byte // the buffer entry exactly as it was
	Error    string
	Attempts int
	FailedAt time.Time
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
