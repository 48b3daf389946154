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
)

// eventDoc is an event as stored. timestamp is a BSON date (milliseconds) for indexes and
// TTL; tsNs keeps the full nanosecond time; bt is the token of the InsertBatch call that
// stored it, so that an unfinished rollup can be redone from the events of that call.
type eventDoc struct {
	ID          string    `bson:"_id"`
	EventID     string    `bson:"eventId"`
	EventType   string    `bson:"eventType"`
	UserID      string    `bson:"userId"`
	SessionID   string    `bson:"sessionId"`
	Timestamp   time.Time `bson:"timestamp"`
	TsNs        int64     `bson:"tsNs"`
	Metadata    any       `bson:"metadata,omitempty"`
	Payload     any       `bson:"payload,omitempty"`
	Priority    int32     `bson:"priority"`
	ReceivedAt  time.Time `bson:"receivedAt"`
	ProcessedAt time.Time `bson:"processedAt"`
	BT          string    `bson:"bt"`
	Source      string    `bson:"source,omitempty"`
}

// jsonValue turns a client's JSON object into a BSON document (relaxed Extended JSON, so
// plain JSON keeps its numbers, strings and nesting); what does not convert is kept as the
// JSON text.
func jsonValue(raw []byte) any {
	if len(raw) == 0 {
		return nil
	}
	var d bson.D
	if err := bson.UnmarshalExtJSON(raw, false, &d); err == nil {
		return d
	}
	return string(raw)
}

// rollupKey is one rollup_minute document: a Unix minute of event time and an event type.
type rollupKey struct {
	minute    int64
	eventType string
}

func (k rollupKey) id() string { return strconv.FormatInt(k.minute, 10) + "/" + k.eventType }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// unixMinute is the Unix minute of a Unix-nanosecond time.
func unixMinute(ns int64) int64 { return floorDiv(ns, int64(time.Minute)) }

// newToken returns a token unique to one InsertBatch call: its start time (16 hex digits,
// so tokens sort by age), the writer id and a sequence number. Tokens are field names in
// rollup documents, so they hold no dot and no dollar.
func (s *Store) newToken() string {
	return fmt.Sprintf("%016x-%s-%d", uint64(time.Now().UnixNano()), s.writer, s.seq.Add(1))
}

// tokenAge is how long ago the call that made tok started; ok is false for a malformed one.
func tokenAge(tok string, now time.Time) (time.Duration, bool) {
	if len(tok) < 17 {
		return 0, false
	}
	ns, err := strconv.ParseUint(tok[:16], 16, 64)
	if err != nil {
		return 0, false
	}
	return now.Sub(time.Unix(0, int64(ns))), true
}

func tokenWriter(tok string) string {
	parts := strings.Split(tok, "-")
	if len(parts) != 3 {
		return ""
	}
	return parts[1]
}

// recoverable reports whether this process may finish the pending rollup of tok: not while
// a call of this process runs with it; at once when it is this process's own (its call has
// returned); after RecoverAfter when another process made it.
func (s *Store) recoverable(tok string, now time.Time) bool {
	if _, running := s.active.Load(tok); running {
		return false
	}
	if tokenWriter(tok) == s.writer {
		return true
	}
	age, ok := tokenAge(tok, now)
	return ok && age >= s.recoverAfter
}

// InsertBatch implements store.EventStore; see the package documentation for the order of
// its writes and what a crash between them leaves.
func (s *Store) InsertBatch(ctx context.Context, events []event.Event, processedAt time.Time) (inserted, duplicates int, err error) {
	if len(events) == 0 {
		return 0, 0, nil
	}
	tok := s.newToken()
	s.active.Store(tok, struct{}{})
	defer s.active.Delete(tok)
	// Step 0: register the call as pending before any of its events exists.
	if _, err := s.pending.InsertOne(ctx, bson.D{{Key: "_id", Value: tok}, {Key: "at", Value: time.Now().UTC()}}); err != nil {
		return 0, 0, fmt.Errorf("mongostore: register batch: %w", err)
	}

	docs := make([]any, len(events))
	for i := range events {
		e := &events[i]
		docs[i] = eventDoc{
			ID: e.EventID, EventID: e.EventID, EventType: e.EventType, UserID: e.UserID, SessionID: e.SessionID,
			Timestamp: e.Timestamp, TsNs: e.Timestamp.UnixNano(),
			Metadata: jsonValue(e.Metadata), Payload: jsonValue(e.Payload), Priority: int32(e.Priority),
			ReceivedAt: e.ReceivedAt, ProcessedAt: processedAt, BT: tok, Source: e.Source,
		}
	}
	dup := make([]bool, len(events))
	if _, err := s.events.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false)); err != nil {
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
			return 0, 0, fmt.Errorf("mongostore: insert %d events: %w", len(events), err)
		}
		for _, we := range bwe.WriteErrors {
			if !isDupKey(we.Code) || we.Index < 0 || we.Index >= len(events) {
				return 0, 0, fmt.Errorf("mongostore: insert %d events: %w", len(events), err)
			}
			dup[we.Index] = true
			duplicates++
		}
	}
	inserted = len(events) - duplicates

	if duplicates > 0 {
		// Some of them may have been inserted by an attempt that did not finish its rollup.
		if err := s.finishPending(ctx, events, dup, tok); err != nil {
			return 0, 0, err
		}
	}
	var applied []string
	if inserted > 0 {
		counts := map[rollupKey]int64{}
		for i := range events {
			if !dup[i] {
				counts[rollupKey{unixMinute(events[i].Timestamp.UnixNano()), events[i].EventType}]++
			}
		}
		if applied, err = s.applyCounts(ctx, tok, counts); err != nil {
			return 0, 0, err
		}
	}
	if err := s.addSketches(ctx, events); err != nil {
		return 0, 0, err
	}
	// Counted as finished before it is unregistered, so that Analytics always sees the call:
	// registered, or in the count (see writeState).
	if _, err := s.writes.UpdateOne(ctx, bson.D{{Key: "_id", Value: finishedID}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}, options.UpdateOne().SetUpsert(true)); err != nil {
		return 0, 0, fmt.Errorf("mongostore: finish batch: %w", err)
	}
	if _, err := s.pending.DeleteOne(ctx, bson.D{{Key: "_id", Value: tok}}); err != nil {
		return 0, 0, fmt.Errorf("mongostore: finish rollup: %w", err)
	}
	if len(applied) > 0 {
		// Only now may the guard go: the call is no longer registered as pending.
		if _, err := s.rollups.UpdateMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: applied}}}},
			bson.D{{Key: "$unset", Value: bson.D{{Key: "tok." + tok, Value: ""}}}}); err != nil {
			return 0, 0, fmt.Errorf("mongostore: finish rollup: %w", err)
		}
	}
	return inserted, duplicates, nil
}

func isDupKey(code int) bool { return code == 11000 || code == 11001 || code == 12582 }

// finishPending finishes the rollups of the calls that stored some of the duplicates and
// are still registered as pending (see the package documentation).
func (s *Store) finishPending(ctx context.Context, events []event.Event, dup []bool, own string) error {
	ids := make([]string, 0, len(events))
	for i := range events {
		if dup[i] {
			ids = append(ids, events[i].EventID)
		}
	}
	cur, err := s.events.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
		options.Find().SetProjection(bson.D{{Key: "bt", Value: 1}}))
	if err != nil {
		return fmt.Errorf("mongostore: pending rollups: %w", err)
	}
	var rows []struct {
		BT string `bson:"bt"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return fmt.Errorf("mongostore: pending rollups: %w", err)
	}
	seen := map[string]bool{own: true}
	var toks []string
	for _, r := range rows {
		if r.BT != "" && !seen[r.BT] {
			seen[r.BT] = true
			toks = append(toks, r.BT)
		}
	}
	if len(toks) == 0 {
		return nil
	}
	cur, err = s.pending.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: toks}}}})
	if err != nil {
		return fmt.Errorf("mongostore: pending rollups: %w", err)
	}
	return s.finishAll(ctx, cur)
}

// finishAll finishes the pending calls cur lists that this process may recover.
func (s *Store) finishAll(ctx context.Context, cur *mongo.Cursor) error {
	var pend []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &pend); err != nil {
		return fmt.Errorf("mongostore: pending rollups: %w", err)
	}
	now := time.Now()
	for _, p := range pend {
		if !s.recoverable(p.ID, now) {
			continue // its writer is at work, or the sweep finishes it once it is old enough
		}
		if err := s.finishToken(ctx, p.ID); err != nil {
			return err
		}
	}
	return nil
}

// finishToken counts every event stored by the call tok, applies the counts under tok's
// guard, adds the events to the sketches and unregisters the call. The guard stays in the rollup documents, so that a late
// write of the call itself is rejected too.
func (s *Store) finishToken(ctx context.Context, tok string) error {
	cur, err := s.events.Find(ctx, bson.D{{Key: "bt", Value: tok}}, options.Find().SetProjection(bson.D{
		{Key: "eventType", Value: 1}, {Key: "tsNs", Value: 1}, {Key: "userId", Value: 1}, {Key: "sessionId", Value: 1}}))
	if err != nil {
		return fmt.Errorf("mongostore: recover rollup: %w", err)
	}
	var rows []struct {
		EventType string `bson:"eventType"`
		TsNs      int64  `bson:"tsNs"`
		UserID    string `bson:"userId"`
		SessionID string `bson:"sessionId"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return fmt.Errorf("mongostore: recover rollup: %w", err)
	}
	counts := map[rollupKey]int64{}
	events := make([]event.Event, len(rows))
	for i, r := range rows {
		counts[rollupKey{unixMinute(r.TsNs), r.EventType}]++
		events[i] = event.Event{EventType: r.EventType, UserID: r.UserID, SessionID: r.SessionID, Timestamp: time.Unix(0, r.TsNs)}
	}
	if _, err := s.applyCounts(ctx, tok, counts); err != nil {
		return err
	}
	if err := s.addSketches(ctx, events); err != nil { // the call may have died before its own
		return err
	}
	if _, err := s.pending.DeleteOne(ctx, bson.D{{Key: "_id", Value: tok}}); err != nil {
		return fmt.Errorf("mongostore: recover rollup: %w", err)
	}
	return nil
}

// applyCounts adds counts to rollup_minute, each document at most once for tok: the update
// matches only a document without tok.<tok>, and sets it. It returns the ids of the
// documents this call updated (not those where tok had been applied already).
func (s *Store) applyCounts(ctx context.Context, tok string, counts map[rollupKey]int64) ([]string, error) {
	if len(counts) == 0 {
		return nil, nil
	}
	guard := "tok." + tok
	keys := make([]rollupKey, 0, len(counts))
	models := make([]mongo.WriteModel, 0, len(counts))
	model := func(k rollupKey) mongo.WriteModel {
		return mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: k.id()}, {Key: guard, Value: bson.D{{Key: "$exists", Value: false}}}}).
			SetUpdate(bson.D{
				{Key: "$inc", Value: bson.D{{Key: "c", Value: counts[k]}}},
				{Key: "$set", Value: bson.D{{Key: guard, Value: true}}},
				{Key: "$setOnInsert", Value: bson.D{{Key: "m", Value: k.minute}, {Key: "t", Value: k.eventType},
					{Key: "at", Value: time.Unix(k.minute*60, 0).UTC()}}},
			}).SetUpsert(true)
	}
	for k := range counts {
		keys = append(keys, k)
		models = append(models, model(k))
	}
	failed := map[int]bool{}
	if _, err := s.rollups.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
			return nil, fmt.Errorf("mongostore: rollup: %w", err)
		}
		for _, we := range bwe.WriteErrors {
			if !isDupKey(we.Code) || we.Index < 0 || we.Index >= len(keys) {
				return nil, fmt.Errorf("mongostore: rollup: %w", err)
			}
			failed[we.Index] = true
		}
	}
	applied := make([]string, 0, len(keys))
	for i, k := range keys {
		if !failed[i] {
			applied = append(applied, k.id())
			continue
		}
		// A duplicate key on upsert: either tok was applied to this document already, or
		// another writer created the document between our match and our insert (an upsert
		// whose filter is not pure equality is not retried by the server). Tell them apart.
		done, err := s.applyOne(ctx, k, model(k), guard)
		if err != nil {
			return nil, err
		}
		if done {
			applied = append(applied, k.id())
		}
	}
	return applied, nil
}

// applyOne retries one guarded update after a duplicate key; done is false when the guard
// shows tok already applied.
func (s *Store) applyOne(ctx context.Context, k rollupKey, m mongo.WriteModel, guard string) (done bool, err error) {
	for attempt := 0; attempt < 5; attempt++ {
		n, err := s.rollups.CountDocuments(ctx, bson.D{{Key: "_id", Value: k.id()}, {Key: guard, Value: true}})
		if err != nil {
			return false, fmt.Errorf("mongostore: rollup: %w", err)
		}
		if n > 0 {
			return false, nil
		}
		_, err = s.rollups.BulkWrite(ctx, []mongo.WriteModel{m})
		if err == nil {
			return true, nil
		}
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || len(bwe.WriteErrors) != 1 || !isDupKey(bwe.WriteErrors[0].Code) {
			return false, fmt.Errorf("mongostore: rollup: %w", err)
		}
	}
	return false, fmt.Errorf("mongostore: rollup %s: the guarded update kept conflicting", k.id())
}

// sweepLoop finishes pending rollups older than RecoverAfter that no redelivery reached.
func (s *Store) sweepLoop(ctx context.Context) {
	defer close(s.sweepDone)
	every := s.recoverAfter / 2
	if every < time.Second {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = s.Sweep(ctx)
		}
	}
}

// Sweep finishes the pending calls whose token is at least RecoverAfter old (and those of
// this process's calls that have returned).
func (s *Store) Sweep(ctx context.Context) error {
	cur, err := s.pending.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(1000))
	if err != nil {
		return fmt.Errorf("mongostore: sweep: %w", err)
	}
	return s.finishAll(ctx, cur)
}
