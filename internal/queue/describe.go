package queue

import "time"

// Description is what a buffer tells about itself for GET /api/metrics/stream: the
// streams entries are appended to and the consumer groups that read them.
type Description struct {
	Backend string // "redis" or "embedded"
	// Stream is the stream key; with several partitions, the stem of their keys.
	Stream string
	// Partitions is the number of streams entries are appended to; 0 means 1.
	Partitions int
	// Streams are the keys of every stream read: the Partitions appended to, then any
	// left over from another partition count that still held entries. Nil means [Stream].
	Streams       []string
	Length        int64 // entries not yet acknowledged
	TotalEnqueued int64 // entries ever appended
	Groups        []GroupDescription
}

// GroupDescription is one consumer group of a buffer.
type GroupDescription struct {
	Name            string
	Pending         int64  // delivered, not yet acknowledged
	Lag             int64  // not yet delivered; -1 when unknown
	LastDeliveredID string // empty when the buffer has no such id
	Consumers       []ConsumerDescription
}

// ConsumerDescription is one consumer of a group.
type ConsumerDescription struct {
	Name    string
	Pending int64         // delivered to it, not yet acknowledged
	Idle    time.Duration // since its last read
}
