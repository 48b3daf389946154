package mongostore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/evp-dev/evp/internal/store"
)

// Forgetting a user (store.Forgetter). The user's events stored before the call
// (userId_1_timestamp_1 finds them) are deleted a (minute, type) group at a time, and that
// group's rollup_minute count lowered by what the deletion says it deleted: exact whoever
// else deletes the same events meanwhile, and commutative with the inserts running ($inc).
// Only events of finished InsertBatch calls are deleted: a call still registered may be
// recovered after a crash, and its recovery recounts the events it finds. A crash between a
// group's deletion and its lowering leaves that count too high (no transaction spans them).
//
// Sketches cannot lose an id, so those of the minutes and hours the events were in are
// rebuilt: a minute's from its raw events, an hour's from its minutes' sketches, written as
// one document in place of every writer's. Writers keep their sketches in memory, so the
// deletion first bumps the sketch epoch (a counter in rollup_writes, forgetsID) that each
// Store reads at most every forgetCheck before it adds to a sketch: its documents carry
// their epoch, and on a new one it starts new documents, empty, never reading the old. The
// rebuild waits forgetSettle after the bump and then deletes the documents of older epochs
// of the minutes and hours it rebuilds; a call storing events across that whole wait may
// still put the user's id back into one minute's and one hour's estimates. The minutes to
// rebuild are kept in a document named by the hash of the user id until the rebuild is
// done, so that asking again after a failure finishes it.

const (
	forgetsID    = "forgets"
	forgetBatch  = 1000
	forgetCheck  = time.Second
	forgetSettle = 2 * forgetCheck
	// forgetPendingWait bounds how long a deletion waits for calls storing the user's events
	// to finish before it gives up (their events are then still stored).
	forgetPendingWait = 10 * time.Second
)

var _ store.Forgetter = (*Store)(nil)

// ErrStoring is returned by ForgetUser when some of the user's events belong to a call
// still storing them after forgetPendingWait; the rest are deleted. Calling again finishes.
var ErrStoring = errors.New("mongostore: some of the user's events are still being stored")

// ForgetUser implements store.Forgetter.
func (s *Store) ForgetUser(ctx context.Context, userID string) (int64, error) {
	started := time.Now()
	sum := sha256.Sum256([]byte(userID))
	intent := bson.D{{Key: "_id", Value: "forget:" + hex.EncodeToString(sum[:])}}
	var total int64
	deadline := started.Add(forgetPendingWait)
	for {
		n, minutes, busy, err := s.forgetBatch(ctx, userID, started)
		total += n
		if err == nil && len(minutes) > 0 {
			_, err = s.writes.UpdateOne(ctx, intent, bson.D{{Key: "$addToSet", Value: bson.D{{Key: "minutes", Value: bson.D{{Key: "$each", Value: minutes}}}}}},
				options.UpdateOne().SetUpsert(true))
		}
		if err != nil {
			return total, fmt.Errorf("mongostore: forget: %w", err)
		}
		if n > 0 {
			continue
		}
		if !busy {
			break
		}
		if time.Now().After(deadline) {
			return total, ErrStoring
		}
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	var doc struct {
		Minutes []int64 `bson:"minutes"`
	}
	if err := s.writes.FindOne(ctx, intent).Decode(&doc); err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return total, fmt.Errorf("mongostore: forget: %w", err)
	}
	if err := s.rebuildSketches(ctx, doc.Minutes); err != nil {
		return total, err
	}
	if _, err := s.writes.DeleteOne(ctx, intent); err != nil {
		return total, fmt.Errorf("mongostore: forget: %w", err)
	}
	letters, err := store.ForgetDeadLetters(ctx, s, userID)
	return total + int64(letters), err
}

// forgetBatch deletes up to forgetBatch of the user's events stored before started by
// finished calls and lowers the rollups by them, and returns how many it deleted and
// their minutes. busy reports events of calls still registered, left for later.
func (s *Store) forgetBatch(ctx context.Context, user string, started time.Time) (n int64, minutes []int64, busy bool, err error) {
	cur, err := s.events.Find(ctx, bson.D{{Key: "userId", Value: user}, {Key: "processedAt", Value: bson.D{{Key: "$lte", Value: started}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "eventType", Value: 1}, {Key: "tsNs", Value: 1}, {Key: "bt", Value: 1}}).SetLimit(forgetBatch))
	if err != nil {
		return 0, nil, false, err
	}
	var docs []eventDoc
	if err := cur.All(ctx, &docs); err != nil || len(docs) == 0 {
		return 0, nil, false, err
	}
	running, err := s.runningCalls(ctx, docs)
	if err != nil {
		return 0, nil, false, err
	}
	groups := map[rollupKey][]string{}
	for _, d := range docs {
		if running[d.BT] {
			busy = true
			continue
		}
		k := rollupKey{unixMinute(d.TsNs), d.EventType}
		groups[k] = append(groups[k], d.ID)
	}
	for k, ids := range groups {
		res, err := s.events.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}, {Key: "userId", Value: user}})
		if err != nil {
			return n, minutes, false, err
		}
		if res.DeletedCount == 0 {
			continue // another deletion took them, and counts them off
		}
		if _, err := s.rollups.UpdateOne(ctx, bson.D{{Key: "_id", Value: k.id()}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "c", Value: -res.DeletedCount}}}}); err != nil {
			return n, minutes, false, fmt.Errorf("rollup: %w", err)
		}
		n += res.DeletedCount
		minutes = append(minutes, k.minute)
	}
	return n, minutes, busy, nil
}

// runningCalls returns which of the InsertBatch calls that stored docs are still
// registered as pending.
func (s *Store) runningCalls(ctx context.Context, docs []eventDoc) (map[string]bool, error) {
	tokens := map[string]bool{}
	for _, d := range docs {
		tokens[d.BT] = true
	}
	cur, err := s.pending.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: slices.Collect(maps.Keys(tokens))}}}})
	if err != nil {
		return nil, err
	}
	var pending []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &pending); err != nil {
		return nil, err
	}
	running := map[string]bool{}
	for _, p := range pending {
		running[p.ID] = true
	}
	return running, nil
}

// rebuildSketches rebuilds the sketches of minutes and of their hours once every writer
// has had time to start the new epoch's documents.
func (s *Store) rebuildSketches(ctx context.Context, minutes []int64) error {
	if len(minutes) == 0 {
		return nil
	}
	var doc struct {
		N int64 `bson:"n"`
	}
	err := s.writes.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: forgetsID}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}},
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&doc)
	if err != nil {
		return fmt.Errorf("mongostore: forget: %w", err)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(forgetSettle):
	}
	hours := map[int64]bool{}
	slices.Sort(minutes)
	for _, m := range minutes {
		p, err := s.minuteSketch(ctx, m)
		if err != nil {
			return fmt.Errorf("mongostore: forget: %w", err)
		}
		if err := s.replaceSketch(ctx, "m", m, doc.N, p); err != nil {
			return err
		}
		hours[floorDiv(m, 60)] = true
	}
	for h := range hours {
		p := store.NewSketchPair()
		if err := s.mergeSketches(ctx, p, "m", h*60, (h+1)*60); err != nil {
			return fmt.Errorf("mongostore: forget: %w", err)
		}
		if err := s.replaceSketch(ctx, "h", h, doc.N, p); err != nil {
			return err
		}
	}
	return nil
}

// minuteSketch is the sketch of the users and sessions of the events of Unix minute m.
func (s *Store) minuteSketch(ctx context.Context, m int64) (*store.SketchPair, error) {
	cur, err := s.events.Find(ctx, timeBounds(m*int64(time.Minute), (m+1)*int64(time.Minute)),
		options.Find().SetProjection(bson.D{{Key: "userId", Value: 1}, {Key: "sessionId", Value: 1}}))
	if err != nil {
		return nil, err
	}
	defer func() { _ = cur.Close(ctx) }()
	p := store.NewSketchPair()
	for cur.Next(ctx) {
		var d eventDoc
		if err := cur.Decode(&d); err != nil {
			return nil, err
		}
		p.Users.Insert([]byte(d.UserID))
		p.Sessions.Insert([]byte(d.SessionID))
	}
	return p, cur.Err()
}

// replaceSketch makes p the bucket's sketch in place of every document of an epoch before
// epoch: a document of its own (writer "rebuilt"), which no writer writes to; the current
// epoch's documents, started empty after the bump, stay.
func (s *Store) replaceSketch(ctx context.Context, kind string, bucket, epoch int64, p *store.SketchPair) error {
	ub, err1 := p.Users.MarshalBinary()
	sb, err2 := p.Sessions.MarshalBinary()
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("mongostore: forget: %w", err)
	}
	id := kind + ":" + strconv.FormatInt(bucket, 10) + ":rebuilt"
	older := bson.A{bson.D{{Key: "e", Value: bson.D{{Key: "$exists", Value: false}}}}, bson.D{{Key: "e", Value: bson.D{{Key: "$lt", Value: epoch}}}}}
	if _, err := s.sketch.DeleteMany(ctx, bson.D{{Key: "k", Value: kind}, {Key: "b", Value: bucket}, {Key: "_id", Value: bson.D{{Key: "$ne", Value: id}}}, {Key: "$or", Value: older}}); err != nil {
		return fmt.Errorf("mongostore: forget: %w", err)
	}
	doc := sketchDoc{ID: id, Kind: kind, Bucket: bucket, Writer: "rebuilt", Epoch: epoch, Users: ub, Sessions: sb, At: bucketStart(kind, bucket)}
	_, err := s.sketch.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, doc, options.Replace().SetUpsert(true))
	if mongo.IsDuplicateKeyError(err) {
		// Another deletion's rebuild inserted it between our match and our insert: replace
		// theirs (both are made from the raw events after the deletions).
		_, err = s.sketch.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, doc, options.Replace().SetUpsert(true))
	}
	if err != nil {
		return fmt.Errorf("mongostore: forget: %w", err)
	}
	return nil
}

// sketchEpoch returns the sketch epoch, reading it again when it was last read forgetCheck
// ago or more; on a new one the cached sketches are dropped (their documents are of the old
// epoch). A failed read keeps the epoch known: the next call reads again.
func (s *Store) sketchEpoch(ctx context.Context) int64 {
	s.forgets.mu.Lock()
	defer s.forgets.mu.Unlock()
	if time.Since(s.forgets.checked) < forgetCheck {
		return s.forgets.seen
	}
	var doc struct {
		N int64 `bson:"n"`
	}
	err := s.writes.FindOne(ctx, bson.D{{Key: "_id", Value: forgetsID}}).Decode(&doc)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return s.forgets.seen
	}
	s.forgets.checked = time.Now()
	if doc.N != s.forgets.seen {
		s.forgets.seen = doc.N
		s.sketches.mu.Lock()
		clear(s.sketches.entries)
		s.sketches.mu.Unlock()
	}
	return s.forgets.seen
}
