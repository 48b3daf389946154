package mongostore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
)

// Reading stored events (store.EventReader): an hour of event time at a time
// (store.ScanHours), found through the timestamp index (or userId's), each hour's events
// sorted by the server by their full nanosecond time and then _id (on disk when they do not
// fit its sort memory).

// ScanEvents implements store.EventReader.
func (s *Store) ScanEvents(ctx context.Context, q store.EventQuery, fn func(*store.StoredEvent) bool) (*store.Position, error) {
	return store.ScanHours(ctx, (*eventRange)(s), q, fn)
}

// GetEvent implements store.EventReader.
func (s *Store) GetEvent(ctx context.Context, eventID string) (store.StoredEvent, error) {
	var d readDoc
	err := s.events.FindOne(ctx, bson.D{{Key: "_id", Value: eventID}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.StoredEvent{}, store.ErrNotFound
	}
	if err != nil {
		return store.StoredEvent{}, fmt.Errorf("mongostore: get event: %w", err)
	}
	return d.stored(), nil
}

// eventRange is the store as a store.EventRange: its buckets are hours.
type eventRange Store

// timeBounds matches events with a time in [lo, hi): by the indexed millisecond date
// first, then by the exact time.
func timeBounds(lo, hi int64) bson.D {
	return bson.D{
		{Key: "timestamp", Value: bson.D{{Key: "$gte", Value: time.UnixMilli(floorDiv(lo, 1e6))}, {Key: "$lte", Value: time.UnixMilli(floorDiv(hi-1, 1e6))}}},
		{Key: "tsNs", Value: bson.D{{Key: "$gte", Value: lo}, {Key: "$lt", Value: hi}}},
	}
}

// PrevBucket implements store.EventRange: the hour of the newest event before before.
func (r *eventRange) PrevBucket(ctx context.Context, from, before int64) (lo, hi int64, ok bool, err error) {
	var d struct {
		TsNs int64 `bson:"tsNs"`
	}
	// By the indexed date alone: any event of the newest millisecond is in the newest hour
	// (hours are whole milliseconds), and a sort the index cannot serve would read them all.
	err = r.events.FindOne(ctx, timeBounds(from, before), options.FindOne().
		SetSort(bson.D{{Key: "timestamp", Value: -1}}).SetProjection(bson.D{{Key: "tsNs", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("mongostore: events: %w", err)
	}
	lo = floorDiv(d.TsNs, int64(time.Hour)) * int64(time.Hour)
	return lo, lo + int64(time.Hour), true, nil
}

// ScanRange implements store.EventRange.
func (r *eventRange) ScanRange(ctx context.Context, lo, hi int64, q *store.EventQuery, limit int, fn func(*store.StoredEvent) bool) error {
	filter := timeBounds(lo, hi)
	for _, c := range []struct{ field, v string }{{"eventType", q.EventType}, {"userId", q.UserID}, {"sessionId", q.SessionID}} {
		if c.v != "" {
			filter = append(filter, bson.E{Key: c.field, Value: c.v})
		}
	}
	// Property conditions narrow the documents on the server, but MongoDB also matches
	// inside arrays, which the other stores do not: store.Matches has the last word, so
	// the server may not stop at the limit.
	for _, p := range q.Props {
		filter = append(filter, bson.E{Key: p.Field + "." + strings.Join(p.Path, "."), Value: bson.D{{Key: "$in", Value: propValues(p.Value)}}})
	}
	if len(q.Props) > 0 {
		limit = 0
	}
	if a := q.After; a != nil {
		or := bson.A{bson.D{{Key: "tsNs", Value: bson.D{{Key: "$lt", Value: a.TS}}}}}
		if a.Key != "" {
			or = append(or, bson.D{{Key: "tsNs", Value: a.TS}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: a.Key}}}})
		}
		filter = append(filter, bson.E{Key: "$or", Value: or})
	}
	opts := options.Find().SetSort(bson.D{{Key: "tsNs", Value: -1}, {Key: "_id", Value: -1}}).SetAllowDiskUse(true)
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := r.events.Find(ctx, filter, opts)
	if err != nil {
		return fmt.Errorf("mongostore: events: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var d readDoc
		if err := cur.Decode(&d); err != nil {
			return fmt.Errorf("mongostore: events: %w", err)
		}
		e := d.stored()
		if len(q.Props) > 0 && !store.Matches(&e.Event, q) {
			continue
		}
		if !fn(&e) {
			return nil
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("mongostore: events: %w", err)
	}
	return nil
}

// propValues are the values a property condition matches: the string, and the number or
// boolean it spells.
func propValues(v string) bson.A {
	vals := bson.A{v}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		vals = append(vals, f)
	}
	if b, err := strconv.ParseBool(v); err == nil && (v == "true" || v == "false") {
		vals = append(vals, b)
	}
	return vals
}

// readDoc is an eventDoc as read back: metadata and payload as they were stored (a
// document, or the JSON text that did not convert).
type readDoc struct {
	EventID     string        `bson:"eventId"`
	EventType   string        `bson:"eventType"`
	UserID      string        `bson:"userId"`
	SessionID   string        `bson:"sessionId"`
	TsNs        int64         `bson:"tsNs"`
	Metadata    bson.RawValue `bson:"metadata"`
	Payload     bson.RawValue `bson:"payload"`
	Priority    int32         `bson:"priority"`
	ReceivedAt  time.Time     `bson:"receivedAt"`
	ProcessedAt time.Time     `bson:"processedAt"`
	Source      string        `bson:"source"`
}

func (d *readDoc) stored() store.StoredEvent {
	return store.StoredEvent{
		Event: event.Event{EventID: d.EventID, EventType: d.EventType, UserID: d.UserID, SessionID: d.SessionID,
			Timestamp: time.Unix(0, d.TsNs).UTC(), Metadata: jsonText(d.Metadata), Payload: jsonText(d.Payload),
			Priority: int(d.Priority), ReceivedAt: d.ReceivedAt.UTC(), Source: d.Source},
		ProcessedAt: d.ProcessedAt.UTC(),
		Pos:         store.Position{TS: d.TsNs, Key: d.EventID},
	}
}

// jsonText turns a stored metadata or payload back into JSON: a document as relaxed
// Extended JSON (plain JSON for what plain JSON sent), a string as the text it kept.
func jsonText(v bson.RawValue) []byte {
	switch v.Type {
	case bson.TypeEmbeddedDocument:
		if b, err := bson.MarshalExtJSON(v.Document(), false, false); err == nil {
			return b
		}
	case bson.TypeString:
		return []byte(v.StringValue())
	}
	return nil
}
