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

// Forgetting a user (store.Forgetter). The user's events (userId_1_timestamp_1 finds them)
// are deleted a thousand at a time, and rollup_minute lowered by what was deleted ($inc is
// commutative with the inserts running meanwhile). One deletion of a user runs at a time
// (lockUser), so that each event is counted off once. A crash between the deletion and the
// lowering leaves those counts too high, as no transaction spans them. Only events of finished InsertBatch calls
// are deleted: a call still registered may be recovered after a crash, and its recovery
// recounts the events it finds, so a deletion meanwhile would be counted off twice.
//
// Sketches cannot lose an id, so those of the minutes and hours the events were in are
// rebuilt: a minute's from its raw events, an hour's from its minutes' sketches, written as
// one document in place of every writer's. Every writer keeps its sketches in memory and
// would write the old ones back, so the deletion first bumps a counter in rollup_writes
// (forgetsID) that each Store reads at most every forgetCheck before it adds to a sketch,
// dropping its cached sketches when it changed; the rebuild waits forgetSettle after the
// bump, so that writers read it first. A call storing events across that whole wait may
// still put the user's id back into one minute's and one hour's estimates.

const (
	forgetsID    = "forgets"
	forgetBatch  = 1000
	forgetCheck  = time.Second
	forgetSettle = 2 * forgetCheck
	// forgetLease is how long a deletion's lock on its user outlives its last renewal.
	forgetLease = time.Minute
	// forgetPendingWait bounds how long a deletion waits for calls storing the user's events
	// to finish before it gives up (their events are then still stored).
	forgetPendingWait = 10 * time.Second
)

var _ store.Forgetter = (*Store)(nil)

// ErrStoring is returned by ForgetUser when some of the user's events belong to a call
// still storing them after forgetPendingWait; the rest are deleted. Calling again finishes.
var ErrStoring = errors.New("mongostore: some of the user's events are still being stored")

// ForgetUser implements store.Forgetter.
func (s *Store) ForgetUser(ctx context.Context, userID string) (n int64, err error) {
	renew, release, ok, err := s.lockUser(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("mongostore: forget: %w", err)
	}
	if !ok {
		return 0, store.ErrForgetRunning
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = errors.Join(err, release(rctx))
	}()
	return s.forgetLocked(ctx, userID, renew)
}

// forgetLocked is ForgetUser with the user's lock held.
func (s *Store) forgetLocked(ctx context.Context, userID string, renew func(context.Context) error) (int64, error) {
	minutes := map[int64]bool{}
	var total int64
	deadline := time.Now().Add(forgetPendingWait)
	for {
		n, busy, err := s.forgetBatch(ctx, userID, minutes)
		total += n
		if err == nil {
			err = renew(ctx)
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
			return total, errors.Join(ErrStoring, s.rebuildSketches(ctx, minutes))
		}
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := s.rebuildSketches(ctx, minutes); err != nil {
		return total, err
	}
	letters, err := store.ForgetDeadLetters(ctx, s, userID)
	return total + int64(letters), err
}

// forgetBatch deletes up to forgetBatch of the user's events stored by finished calls and
// lowers the rollups by them, adding their minutes to minutes. busy reports events of
// calls still registered, left for later. The caller holds the user's lock, so the events
// it finds are deleted by it alone.
func (s *Store) forgetBatch(ctx context.Context, user string, minutes map[int64]bool) (n int64, busy bool, err error) {
	cur, err := s.events.Find(ctx, bson.D{{Key: "userId", Value: user}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "eventType", Value: 1}, {Key: "tsNs", Value: 1}, {Key: "bt", Value: 1}}).SetLimit(forgetBatch))
	if err != nil {
		return 0, false, err
	}
	var docs []eventDoc
	if err := cur.All(ctx, &docs); err != nil {
		return 0, false, err
	}
	if len(docs) == 0 {
		return 0, false, nil
	}
	tokens := map[string]bool{}
	for _, d := range docs {
		tokens[d.BT] = true
	}
	cur, err = s.pending.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: slices.Collect(maps.Keys(tokens))}}}})
	if err != nil {
		return 0, false, err
	}
	var pending []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &pending); err != nil {
		return 0, false, err
	}
	running := map[string]bool{}
	for _, p := range pending {
		running[p.ID] = true
	}
	var ids []string
	counts := map[rollupKey]int64{}
	for _, d := range docs {
		if running[d.BT] {
			busy = true
			continue
		}
		ids = append(ids, d.ID)
		counts[rollupKey{unixMinute(d.TsNs), d.EventType}]++
	}
	if len(ids) == 0 {
		return 0, busy, nil
	}
	if _, err := s.events.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}, {Key: "userId", Value: user}}); err != nil {
		return 0, false, err
	}
	models := make([]mongo.WriteModel, 0, len(counts))
	for k, c := range counts {
		models = append(models, mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: k.id()}}).
			SetUpdate(bson.D{{Key: "$inc", Value: bson.D{{Key: "c", Value: -c}}}}))
		minutes[k.minute] = true
	}
	if _, err := s.rollups.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
		return 0, false, fmt.Errorf("rollup: %w", err)
	}
	return int64(len(ids)), busy, nil
}

// lockUser takes the lock of the user's deletions: a document of rollup_writes named by the
// hash of the user id (not the id itself), held until release or for forgetLease after its
// last renewal (a process that died leaves it to expire). ok is false when another deletion
// holds it.
func (s *Store) lockUser(ctx context.Context, user string) (renew, release func(context.Context) error, ok bool, err error) {
	sum := sha256.Sum256([]byte(user))
	id, tok := "forget:"+hex.EncodeToString(sum[:]), s.newToken()
	for attempt := 0; attempt < 2; attempt++ {
		_, err = s.writes.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "owner", Value: tok}, {Key: "until", Value: time.Now().Add(forgetLease)}})
		if err == nil {
			break
		}
		if !mongo.IsDuplicateKeyError(err) {
			return nil, nil, false, err
		}
		if attempt == 1 {
			return nil, nil, false, nil
		}
		// Held: taken over only once expired.
		if _, err := s.writes.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "until", Value: bson.D{{Key: "$lt", Value: time.Now()}}}}); err != nil {
			return nil, nil, false, err
		}
	}
	mine := bson.D{{Key: "_id", Value: id}, {Key: "owner", Value: tok}}
	renew = func(ctx context.Context) error {
		_, err := s.writes.UpdateOne(ctx, mine, bson.D{{Key: "$set", Value: bson.D{{Key: "until", Value: time.Now().Add(forgetLease)}}}})
		return err
	}
	release = func(ctx context.Context) error {
		_, err := s.writes.DeleteOne(ctx, mine)
		return err
	}
	return renew, release, true, nil
}

// rebuildSketches rebuilds the sketches of minutes and of their hours once every writer
// has had time to drop its cached ones.
func (s *Store) rebuildSketches(ctx context.Context, minutes map[int64]bool) error {
	if len(minutes) == 0 {
		return nil
	}
	if _, err := s.writes.UpdateOne(ctx, bson.D{{Key: "_id", Value: forgetsID}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}, options.UpdateOne().SetUpsert(true)); err != nil {
		return fmt.Errorf("mongostore: forget: %w", err)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(forgetSettle):
	}
	hours := map[int64]bool{}
	for _, m := range slices.Sorted(maps.Keys(minutes)) {
		p, err := s.minuteSketch(ctx, m)
		if err != nil {
			return fmt.Errorf("mongostore: forget: %w", err)
		}
		if err := s.replaceSketch(ctx, "m", m, p); err != nil {
			return err
		}
		hours[floorDiv(m, 60)] = true
	}
	for h := range hours {
		p := store.NewSketchPair()
		cur, err := s.sketch.Find(ctx, bson.D{{Key: "k", Value: "m"}, {Key: "b", Value: bson.D{{Key: "$gte", Value: h * 60}, {Key: "$lt", Value: (h + 1) * 60}}}})
		if err != nil {
			return fmt.Errorf("mongostore: forget: %w", err)
		}
		var docs []sketchDoc
		if err := cur.All(ctx, &docs); err != nil {
			return fmt.Errorf("mongostore: forget: %w", err)
		}
		for _, d := range docs {
			m := store.NewSketchPair()
			if err := m.Unmarshal(d.Users, d.Sessions); err != nil {
				return fmt.Errorf("mongostore: forget: sketch %s: %w", d.ID, err)
			}
			if err := p.Merge(m); err != nil {
				return fmt.Errorf("mongostore: forget: %w", err)
			}
		}
		if err := s.replaceSketch(ctx, "h", h, p); err != nil {
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

// replaceSketch makes p the one sketch document of the bucket, in place of every writer's:
// a document of its own (writer "rebuilt"), which no writer writes to.
func (s *Store) replaceSketch(ctx context.Context, kind string, bucket int64, p *store.SketchPair) error {
	ub, err1 := p.Users.MarshalBinary()
	sb, err2 := p.Sessions.MarshalBinary()
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("mongostore: forget: %w", err)
	}
	id := kind + ":" + strconv.FormatInt(bucket, 10) + ":rebuilt"
	if _, err := s.sketch.DeleteMany(ctx, bson.D{{Key: "k", Value: kind}, {Key: "b", Value: bucket}, {Key: "_id", Value: bson.D{{Key: "$ne", Value: id}}}}); err != nil {
		return fmt.Errorf("mongostore: forget: %w", err)
	}
	at := time.Unix(bucket*60, 0).UTC()
	if kind == "h" {
		at = time.Unix(bucket*3600, 0).UTC()
	}
	if _, err := s.sketch.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}},
		sketchDoc{ID: id, Kind: kind, Bucket: bucket, Writer: "rebuilt", Users: ub, Sessions: sb, At: at},
		options.Replace().SetUpsert(true)); err != nil {
		return fmt.Errorf("mongostore: forget: %w", err)
	}
	return nil
}

// checkForgets drops the cached sketches when a deletion happened since the last look
// (at most every forgetCheck), so that they are read again, rebuilt.
func (s *Store) checkForgets(ctx context.Context) error {
	s.forgets.mu.Lock()
	defer s.forgets.mu.Unlock()
	if time.Since(s.forgets.checked) < forgetCheck {
		return nil
	}
	var doc struct {
		N int64 `bson:"n"`
	}
	err := s.writes.FindOne(ctx, bson.D{{Key: "_id", Value: forgetsID}}).Decode(&doc)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return fmt.Errorf("mongostore: sketch: %w", err)
	}
	s.forgets.checked = time.Now()
	if doc.N != s.forgets.seen {
		s.forgets.seen = doc.N
		s.sketches.mu.Lock()
		clear(s.sketches.entries)
		s.sketches.mu.Unlock()
	}
	return nil
}
