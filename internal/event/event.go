// Package event defines the event evp ingests, its wire decoding and its validation
// against the rules of the HTTP contract.
package event

import (
	"encoding/json"
	"time"

	"github.com/oklog/ulid/v2"
)

// Event is one validated event as it travels from the API through the buffer to the store.
// Metadata and Payload hold the client's JSON objects unchanged (nil when absent).
type Event struct {
	EventID    string          `json:"eventId"`
	EventType  string          `json:"eventType"`
	UserID     string          `json:"userId"`
	SessionID  string          `json:"sessionId"`
	Timestamp  time.Time       `json:"timestamp"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
	Payload    json.RawMessage `json:"payload,omitempty"`
	Priority   int             `json:"priority"`
	ReceivedAt time.Time       `json:"receivedAt"`
	// Source is the route or SDK protocol the event came by (one of the Source constants;
	// empty for events stored before evp recorded it).
	Source string `json:"source,omitempty"`
}

// The routes and protocols an event can come by.
const (
	SourceAPI     = "api"     // POST /api/v1/events and /api/v1/events/batch
	SourceSegment = "segment" // the Segment HTTP tracking API
	SourcePostHog = "posthog" // PostHog's capture API
	SourceImport  = "import"  // evp import
)

// IDPrefix starts every eventId that evp generates.
const IDPrefix = "evt_"

// NewID returns a new unique, time-ordered event id ("evt_" + ULID). Time order keeps the
// store's unique index appending at its right edge instead of writing at random places.
// Safe for concurrent use.
func NewID() string {
	return IDPrefix + ulid.Make().String()
}

// Marshal encodes e for the buffer as encoding/json does: by hand (appendJSON), and with
// encoding/json for what that does not cover. Metadata and Payload must be valid JSON, as
// the decoders leave them: they are not checked again.
func Marshal(e *Event) ([]byte, error) {
	if b, ok := appendJSON(make([]byte, 0, encodedLen(e)), e); ok {
		return b, nil
	}
	c := *e // so that e does not escape: callers keep their event on the stack
	return json.Marshal(&c)
}
