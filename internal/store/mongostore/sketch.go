package mongostore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
)

// Sketch documents in rollup_sketch, one per (level, bucket, writer, epoch):
//
//	{_id: "m:<unix minute>:<writer>:<epoch>", k: "m" | "h", b: <unix minute or hour>,
//	 w: <writer>, e: <epoch>, v: <version>, users: <HLL>, sessions: <HLL>, at: <bucket start>}
//
// The epoch changes when a user's events are deleted (forget.go): a writer then starts new
// documents rather than adding to the ones that may hold the user.
//
// Only the Store whose writer id is w writes a document, so there is no race between
// processes; inside the process writes of one document are serialised and coalesced (one
// write carries every merge made while the previous one ran), and the version guard
// (v < new version) rejects a write that arrives after a newer one.

type sketchDoc struct {
	ID       string    `bson:"_id"`
	Kind     string    `bson:"k"`
	Bucket   int64     `bson:"b"`
	Writer   string    `bson:"w"`
	Epoch    int64     `bson:"e"`
	Version  int64     `bson:"v"`
	Users    []byte    `bson:"users"`
	Sessions []byte    `bson:"sessions"`
	At       time.Time `bson:"at"`
}

type sketchCache struct {
	mu        sync.Mutex
	entries   map[string]*sketchEntry
	lastEvict time.Time
}

// sketchEntry is this writer's sketch of one minute or hour.
type sketchEntry struct {
	id     string
	kind   string
	bucket int64

	mu     sync.Mutex // guards pair, v, loaded
	pair   *store.SketchPair
	v      int64
	loaded bool

	flushMu   sync.Mutex // one write at a time; guards persisted
	persisted int64

	users    int       // calls holding the entry; guarded by sketchCache.mu
	lastUsed time.Time // guarded by sketchCache.mu
}

func (c *sketchCache) acquire(id, kind string, bucket int64) *sketchEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if now.Sub(c.lastEvict) > time.Minute {
		c.lastEvict = now
		for k, e := range c.entries {
			if e.users == 0 && now.Sub(e.lastUsed) > sketchIdleEvictionTime {
				delete(c.entries, k)
			}
		}
	}
	e := c.entries[id]
	if e == nil {
		e = &sketchEntry{id: id, kind: kind, bucket: bucket, pair: store.NewSketchPair()}
		c.entries[id] = e
	}
	e.users++
	e.lastUsed = now
	return e
}

func (c *sketchCache) release(e *sketchEntry) {
	c.mu.Lock()
	e.users--
	c.mu.Unlock()
}

func (s *Store) sketchID(kind string, bucket, epoch int64) string {
	return kind + ":" + strconv.FormatInt(bucket, 10) + ":" + s.writer + ":" + strconv.FormatInt(epoch, 10)
}

// addSketches adds the user and session ids of every event to this writer's minute and hour
// sketches and returns once they are written.
func (s *Store) addSketches(ctx context.Context, events []event.Event) error {
	epoch := s.sketchEpoch(ctx)
	minutes := map[int64]*store.SketchPair{}
	for i := range events {
		e := &events[i]
		m := unixMinute(e.Timestamp.UnixNano())
		p := minutes[m]
		if p == nil {
			p = store.NewSketchPair()
			minutes[m] = p
		}
		p.Users.Insert([]byte(e.UserID))
		p.Sessions.Insert([]byte(e.SessionID))
	}
	hours := map[int64]*store.SketchPair{}
	for m, p := range minutes {
		h := floorDiv(m, 60)
		if hours[h] == nil {
			hours[h] = store.NewSketchPair()
		}
		if err := hours[h].Merge(p); err != nil {
			return fmt.Errorf("mongostore: sketch: %w", err)
		}
	}
	for _, level := range []struct {
		kind string
		sk   map[int64]*store.SketchPair
	}{{"m", minutes}, {"h", hours}} {
		for b, p := range level.sk {
			if err := s.addSketch(ctx, level.kind, b, epoch, p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) addSketch(ctx context.Context, kind string, bucket, epoch int64, p *store.SketchPair) error {
	e := s.sketches.acquire(s.sketchID(kind, bucket, epoch), kind, bucket)
	defer s.sketches.release(e)

	e.mu.Lock()
	if !e.loaded {
		// The entry is new in memory: continue from what this writer stored before.
		var d sketchDoc
		err := s.sketch.FindOne(ctx, bson.D{{Key: "_id", Value: e.id}}).Decode(&d)
		switch {
		case err == nil:
			if err := e.pair.Unmarshal(d.Users, d.Sessions); err != nil {
				e.pair = store.NewSketchPair()
				e.mu.Unlock()
				return fmt.Errorf("mongostore: sketch %s: %w", e.id, err)
			}
			e.v = d.Version
		case errors.Is(err, mongo.ErrNoDocuments):
		default:
			e.mu.Unlock()
			return fmt.Errorf("mongostore: sketch %s: %w", e.id, err)
		}
		e.loaded = true
	}
	err := e.pair.Merge(p)
	e.v++
	mine := e.v
	e.mu.Unlock()
	if err != nil {
		return fmt.Errorf("mongostore: sketch %s: %w", e.id, err)
	}

	e.flushMu.Lock()
	defer e.flushMu.Unlock()
	if e.persisted >= mine {
		return nil // a write that started after our merge carried it
	}
	e.mu.Lock()
	ub, err1 := e.pair.Users.MarshalBinary()
	sb, err2 := e.pair.Sessions.MarshalBinary()
	v := e.v
	e.mu.Unlock()
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("mongostore: sketch %s: %w", e.id, err)
	}
	at := bucketStart(kind, bucket)
	_, err = s.sketch.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: e.id}, {Key: "v", Value: bson.D{{Key: "$lt", Value: v}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "k", Value: kind}, {Key: "b", Value: bucket}, {Key: "w", Value: s.writer}, {Key: "e", Value: epoch},
			{Key: "v", Value: v}, {Key: "users", Value: ub}, {Key: "sessions", Value: sb}, {Key: "at", Value: at}}}},
		options.UpdateOne().SetUpsert(true))
	if err != nil && !mongo.IsDuplicateKeyError(err) { // duplicate: a newer version is stored
		return fmt.Errorf("mongostore: sketch %s: %w", e.id, err)
	}
	e.persisted = v
	return nil
}

// mergeSketches merges into acc every writer's sketches of kind ("m" or "h") of the
// buckets in [a, b).
func (s *Store) mergeSketches(ctx context.Context, acc *store.SketchPair, kind string, a, b int64) error {
	if a >= b {
		return nil
	}
	cur, err := s.sketch.Find(ctx, bson.D{{Key: "k", Value: kind}, {Key: "b", Value: bson.D{{Key: "$gte", Value: a}, {Key: "$lt", Value: b}}}},
		options.Find().SetProjection(bson.D{{Key: "users", Value: 1}, {Key: "sessions", Value: 1}}))
	if err != nil {
		return err
	}
	defer func() { _ = cur.Close(ctx) }()
	for cur.Next(ctx) {
		var d sketchDoc
		if err := cur.Decode(&d); err != nil {
			return err
		}
		p := store.NewSketchPair()
		if err := p.Unmarshal(d.Users, d.Sessions); err != nil {
			return err
		}
		if err := acc.Merge(p); err != nil {
			return err
		}
	}
	return cur.Err()
}

// bucketStart is when the minute or hour ("m" or "h") bucket starts (a sketch's at, for
// its TTL).
func bucketStart(kind string, bucket int64) time.Time {
	if kind == "h" {
		return time.Unix(bucket*3600, 0).UTC()
	}
	return time.Unix(bucket*60, 0).UTC()
}

// sketchEstimate merges every writer's hour sketches of the whole hours in [startMin,
// endMin) and minute sketches of the remaining minutes, as the SQLite store does.
func (s *Store) sketchEstimate(ctx context.Context, startMin, endMin int64) (users, sessions int64, err error) {
	acc := store.NewSketchPair()
	merge := func(kind string, a, b int64) error { return s.mergeSketches(ctx, acc, kind, a, b) }
	firstHour, endHour := floorDiv(startMin+59, 60), floorDiv(endMin, 60)
	if firstHour >= endHour {
		err = merge("m", startMin, endMin)
	} else {
		err = merge("h", firstHour, endHour)
		if err == nil {
			err = merge("m", startMin, firstHour*60)
		}
		if err == nil {
			err = merge("m", endHour*60, endMin)
		}
	}
	if err != nil {
		return 0, 0, err
	}
	return int64(acc.Users.Estimate()), int64(acc.Sessions.Estimate()), nil
}
