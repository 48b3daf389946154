// Package queue defines the ingestion buffer between the API and the workers.
package queue

import (
	"context"
	"errors"
	"time"

	"github.com/evp-dev/evp/internal/event"
)

// Entry is one event on its way into the buffer.
type Entry struct {
	EventID string
	Data    []byte // the encoded event (event.Marshal)
	// Event is Data decoded, when the caller has it. A buffer in the same process as its
	// workers may hand it over with the message so that they skip decoding Data; it must
	// not be changed once enqueued.
	Event *event.Event
}

// Message is one buffered entry handed to a worker.
type Message struct {
	ID       int64
	EventID  string
	Data     []byte
	Attempts int // deliveries before this one
	// Event is Data decoded, when the buffer handed over the enqueued event in memory; nil
	// otherwise. Read-only: it may be shared with a redelivery.
	Event *event.Event
}

// Stats describes the buffer for the metrics routes.
type Stats struct {
	Length        int64     // entries not yet acknowledged
	Pending       int64     // entries delivered to a worker and not yet acknowledged
	TotalEnqueued int64     // entries ever appended
	OldestAt      time.Time // zero when empty
}

// ErrClosed is returned by every method once the queue is closed.
var ErrClosed = errors.New("queue: closed")

// ErrFull is returned, wrapped with the bound that was reached, by Enqueue when the buffer
// holds as much as it may (bytes on disk, stream length, Redis memory): nothing was
// appended, and the caller should retry once the workers have caught up. Acknowledgements
// are never refused for it.
var ErrFull = errors.New("queue: full")

// Queue is a durable at-least-once buffer.
//
// Enqueue returns nil only once every entry is durable: after a crash it will be delivered.
// Fetch hands out up to max entries that are not in flight, waiting up to wait for the
// first one; it returns an empty slice (not an error) when none arrived. A fetched entry
// stays in flight until Ack (done with it) or Nack (deliver again later); entries in flight
// longer than the claim timeout, and every unacknowledged entry after a restart, are
// delivered again. All methods are safe for concurrent use.
type Queue interface {
	Enqueue(ctx context.Context, entries []Entry) error
	Fetch(ctx context.Context, max int, wait time.Duration) ([]Message, error)
	Ack(ctx context.Context, ids []int64) error
	Nack(ctx context.Context, ids []int64) error
	// PendingEventIDs calls fn with the event id of every unacknowledged entry.
	PendingEventIDs(ctx context.Context, fn func(eventID string)) error
	Stats(ctx context.Context) (Stats, error)
	Ping(ctx context.Context) error
	Close() error
}

// Bounded is implemented by buffers with a capacity bound. Fill reports how much of it is
// used and the bound (bytes of files for the embedded buffer, entries of the fullest stream
// for Redis), for the fill-ratio gauge and the health check.
type Bounded interface {
	Fill(ctx context.Context) (used, limit int64, err error)
}

// Toucher is implemented by buffers whose in-flight entries can be kept from being claimed
// by another worker (after the claim timeout) while their worker is still on them, for
// example waiting out a store outage. Touch resets the entries' idle time without counting
// a delivery.
type Toucher interface {
	Touch(ctx context.Context, ids []int64) error
}
