// Package mongostore keeps events in MongoDB with the official driver: collections events
// and events_dlq, plus rollup_minute, rollup_sketch, rollup_pending and rollup_writes for
// the analytics rollups.
//
// # Idempotency and sharding
//
// An event's _id is its eventId, and inserts are unordered bulk writes in which a
// duplicate-key error (11000) counts the event as a duplicate, never as a failure. On a
// collection sharded on {userId: "hashed"} MongoDB enforces a unique index across shards
// only when the index is the shard key or is prefixed by it, and the default _id index is
// no exception: when _id is not the shard key, its uniqueness holds per shard only ("Shard
// Key Indexes" and "Maintain Uniqueness in Sharded Clusters" in the MongoDB manual). So the
// _id index is not a cluster-wide guarantee either. It is enough here because every copy of
// one event (a redelivered or replayed buffer entry) carries the same userId, hence the same
// shard key value, so all copies are routed to the one shard that owns that value, whose _id
// index rejects the second. What is not detected on a sharded cluster is two different
// events that share an eventId but not a userId (a client reusing an id after the dedup
// window): both can be stored, on different shards. No index could prevent that while the
// shard key is userId; a unique index on eventId alone cannot even be created there.
//
// # Rollups and the crash window
//
// MongoDB has no atomicity across documents without transactions (and FerretDB, used in
// tests, has none), so inserting events and counting them are separate writes. InsertBatch
// runs them in this order, under a token T unique to the call (its start time, the writer id
// and a sequence number):
//
//  0. register T as pending: a document {_id: T} in rollup_pending;
//  1. insert the events, each carrying bt: T (indexed);
//  2. add the counts of the events this call inserted to rollup_minute with $inc, each
//     update guarded by the token: it matches only a document without tok.T and sets tok.T,
//     so T's counts can never be applied twice to one document (a second upsert fails with a
//     duplicate key, which means "already applied");
//  3. add the events' users and sessions to the sketches (below), count the call as
//     finished in rollup_writes ($inc), and unregister T;
//  4. clear tok.T on the documents step 2 updated.
//
// A crash (or error) after 0 and before 3 leaves T registered. When any event T stored is
// delivered again, the insert finds it as a duplicate whose call is still registered and
// finishes T: it recounts all the events with bt: T, applies those counts with the same
// tok.T guard and unregisters T. The guard makes step 2 all-or-nothing per document, so
// counts never double and are never lost: a crash between 2 and 3 is finished without
// counting again, a crash inside 2 counts exactly the documents not yet counted. A recovery
// leaves tok.T in place (a few bytes), so that a late write of the crashed attempt is still
// rejected; so does a crash between 3 and 4. Tokens of a call still running in this process
// are never recovered; a token of another process is recovered only once it is older than
// Options.RecoverAfter (its process is then taken to be dead), and a background sweep of
// rollup_pending finishes calls that no redelivery reaches. The one case that can still
// count a batch twice: a writer that stalls longer than RecoverAfter between steps 1 and 2
// while another process recovers its token, and whose own step 4 lands between that
// recovery's reading of the events and its step 2. Until a pending call is finished its
// events are stored but missing from the counts (never from the raw events, topUsers or the
// userId-filtered figures, which read raw events).
//
// # Consistent answers
//
// Analytics reads the rollups, the sketches and the raw events one after another. It reads
// rollup_pending and the finished count of rollup_writes before and after: when a call was
// registered at either moment, or a call finished between them, a write ran during the
// read, and the result is marked Unsettled (served, not cached). Every write of a call
// happens while it is registered, and it is counted as finished before it is unregistered,
// so no call can slip between the two reads unseen.
//
// Distinct users and sessions are HyperLogLog sketches (precision 14, as the SQLite store).
// Adding an id twice changes nothing, so every event of a batch is added, duplicates
// included, and a redelivered batch repairs a sketch write lost in a crash. To avoid
// read-modify-write races between processes, each Store writes only its own sketch
// documents (one per minute and per hour per writer id, a random id per Open), keeps them in
// memory and writes each one whole, with a version guard so that an old write can never
// overwrite a newer one; queries merge the documents of every writer.
//
// # Forgetting a user
//
// ForgetUser deletes a user's events and lowers the rollups by them, then rebuilds the
// sketches of the minutes and hours they were in, after moving every writer to a new
// sketch epoch (forget.go).
package mongostore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/evp-dev/evp/internal/store"
)

// Collection names.
const (
	EventsCollection       = "events"
	DeadLettersCollection  = "events_dlq"
	RollupCollection       = "rollup_minute"
	SketchCollection       = "rollup_sketch"
	PendingCollection      = "rollup_pending"
	WritesCollection       = "rollup_writes"
	defaultRecoverAfter    = 30 * time.Second
	defaultSelectTimeout   = 5 * time.Second
	sketchIdleEvictionTime = 10 * time.Minute
)

// Options configure Open. Zero values take the defaults noted.
type Options struct {
	// URI is the MongoDB connection string (MONGO_URI).
	URI string
	// Database is the database name (MONGO_DATABASE); "event_processor".
	Database string
	// RetentionDays, when above zero, keeps events and rollups that long (TTL indexes on the
	// event time); zero keeps them forever.
	RetentionDays int
	// RecoverAfter is how old another process's pending rollup must be before this one
	// finishes it; 30 s. Keep it below the buffer's claim idle time.
	RecoverAfter time.Duration
	// ServerSelectionTimeout bounds how long an operation waits for a reachable server; 5 s,
	// so that a dead MongoDB fails calls quickly instead of after the driver's 30 s.
	ServerSelectionTimeout time.Duration
}

// Store implements store.EventStore, store.DeadLetters and store.Analyzer on MongoDB. All
// methods are safe for concurrent use.
type Store struct {
	client  *mongo.Client
	db      *mongo.Database
	events  *mongo.Collection
	dlq     *mongo.Collection
	rollups *mongo.Collection
	sketch  *mongo.Collection
	pending *mongo.Collection
	writes  *mongo.Collection // one document, finishedID: how many InsertBatch calls finished

	writer       string // this Store's writer id (sketch documents, rollup tokens)
	seq          atomic.Uint64
	active       sync.Map // tokens of InsertBatch calls running in this process
	recoverAfter time.Duration
	sketches     sketchCache
	forgets      struct { // when the deletions counter was last read, and its value (forget.go)
		mu      sync.Mutex
		checked time.Time
		seen    int64
	}

	stopSweep context.CancelFunc
	sweepDone chan struct{}
}

var (
	_ store.EventStore  = (*Store)(nil)
	_ store.DeadLetters = (*Store)(nil)
	_ store.Analyzer    = (*Store)(nil)
)

// Open connects, checks that the server answers and creates the indexes (idempotently).
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Database == "" {
		o.Database = "event_processor"
	}
	if o.RecoverAfter <= 0 {
		o.RecoverAfter = defaultRecoverAfter
	}
	if o.ServerSelectionTimeout <= 0 {
		o.ServerSelectionTimeout = defaultSelectTimeout
	}
	copts := options.Client().ApplyURI(o.URI).SetServerSelectionTimeout(o.ServerSelectionTimeout).SetAppName("evp")
	client, err := mongo.Connect(copts)
	if err != nil {
		return nil, fmt.Errorf("mongostore: connect: %w", err)
	}
	s := newStore(client, o)
	if err := s.Ping(ctx); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, err
	}
	if err := s.ensureIndexes(ctx, o.RetentionDays); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, err
	}
	sweepCtx, stop := context.WithCancel(context.Background())
	s.stopSweep, s.sweepDone = stop, make(chan struct{})
	go s.sweepLoop(sweepCtx)
	return s, nil
}

func newStore(client *mongo.Client, o Options) *Store {
	db := client.Database(o.Database)
	var b [8]byte
	_, _ = rand.Read(b[:])
	s := &Store{
		client: client, db: db,
		events:       db.Collection(EventsCollection),
		dlq:          db.Collection(DeadLettersCollection),
		rollups:      db.Collection(RollupCollection),
		sketch:       db.Collection(SketchCollection),
		pending:      db.Collection(PendingCollection),
		writes:       db.Collection(WritesCollection),
		writer:       hex.EncodeToString(b[:]),
		recoverAfter: o.RecoverAfter,
	}
	s.sketches.entries = map[string]*sketchEntry{}
	return s
}

// Client is the driver client (for `evp mongo init` and tests).
func (s *Store) Client() *mongo.Client { return s.client }

// Database is the store's database.
func (s *Store) Database() *mongo.Database { return s.db }

type collIndexes struct {
	coll   *mongo.Collection
	models []mongo.IndexModel
}

func (s *Store) indexPlan(retentionDays int) []collIndexes {
	plan := []collIndexes{
		{s.events, []mongo.IndexModel{
			// The original system's indexes: time range with type filter, one user's events.
			{Keys: bson.D{{Key: "timestamp", Value: 1}, {Key: "eventType", Value: 1}}, Options: options.Index().SetName("timestamp_1_eventType_1")},
			{Keys: bson.D{{Key: "userId", Value: 1}, {Key: "timestamp", Value: 1}}, Options: options.Index().SetName("userId_1_timestamp_1")},
			// RecentEventIDs (dedup window restore) walks the newest receipts.
			{Keys: bson.D{{Key: "receivedAt", Value: -1}}, Options: options.Index().SetName("receivedAt_-1")},
			// The events of one InsertBatch call, to redo its rollup after a crash. Tokens
			// start with the time, so new entries go to the right edge of the index.
			{Keys: bson.D{{Key: "bt", Value: 1}}, Options: options.Index().SetName("bt_1")},
		}},
		{s.rollups, []mongo.IndexModel{
			{Keys: bson.D{{Key: "m", Value: 1}, {Key: "t", Value: 1}}, Options: options.Index().SetName("m_1_t_1")},
		}},
		{s.sketch, []mongo.IndexModel{
			{Keys: bson.D{{Key: "k", Value: 1}, {Key: "b", Value: 1}}, Options: options.Index().SetName("k_1_b_1")},
		}},
	}
	if retentionDays > 0 {
		ttl := int32(retentionDays * 24 * 3600)
		plan[0].models = append(plan[0].models, ttlIndex("timestamp", ttl))
		plan[1].models = append(plan[1].models, ttlIndex("at", ttl))
		plan[2].models = append(plan[2].models, ttlIndex("at", ttl))
	}
	return plan
}

// ttlIndex expires documents ttl seconds after the date in field (the event time, or the
// start of a rollup's minute or hour).
func ttlIndex(field string, ttl int32) mongo.IndexModel {
	return mongo.IndexModel{Keys: bson.D{{Key: field, Value: 1}},
		Options: options.Index().SetName(field + "_ttl").SetExpireAfterSeconds(ttl)}
}

// ensureIndexes creates the indexes; existing ones are left as they are, except a TTL index
// whose retention changed, which is updated with collMod.
func (s *Store) ensureIndexes(ctx context.Context, retentionDays int) error {
	for _, ci := range s.indexPlan(retentionDays) {
		for _, m := range ci.models {
			_, err := ci.coll.Indexes().CreateOne(ctx, m)
			if err == nil {
				continue
			}
			var ce mongo.CommandError
			// 85 IndexOptionsConflict, 86 IndexKeySpecsConflict: same index, other options.
			if errors.As(err, &ce) && (ce.Code == 85 || ce.Code == 86) && isTTL(m) {
				err = s.db.RunCommand(ctx, bson.D{{Key: "collMod", Value: ci.coll.Name()}, {Key: "index", Value: bson.D{
					{Key: "name", Value: *indexName(m)}, {Key: "expireAfterSeconds", Value: *ttlSeconds(m)}}}}).Err()
			}
			if err != nil {
				return fmt.Errorf("mongostore: create index %s on %s: %w", *indexName(m), ci.coll.Name(), err)
			}
		}
		if retentionDays <= 0 {
			// Retention turned off: drop a TTL index left by an earlier run.
			for _, f := range []string{"timestamp", "at"} {
				err := ci.coll.Indexes().DropOne(ctx, f+"_ttl")
				var ce mongo.CommandError
				if err != nil && !(errors.As(err, &ce) && (ce.Code == 27 || ce.Code == 26)) { // IndexNotFound, NamespaceNotFound
					return fmt.Errorf("mongostore: drop TTL index on %s: %w", ci.coll.Name(), err)
				}
			}
		}
	}
	return nil
}

func indexOpts(m mongo.IndexModel) *options.IndexOptions {
	o := &options.IndexOptions{}
	if m.Options != nil {
		for _, set := range m.Options.List() {
			_ = set(o)
		}
	}
	return o
}

func indexName(m mongo.IndexModel) *string { return indexOpts(m).Name }
func ttlSeconds(m mongo.IndexModel) *int32 { return indexOpts(m).ExpireAfterSeconds }
func isTTL(m mongo.IndexModel) bool        { return ttlSeconds(m) != nil }

// Ping implements store.EventStore.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("mongostore: ping: %w", err)
	}
	return nil
}

// Close implements store.EventStore: it stops the background sweep and disconnects.
func (s *Store) Close() error {
	if s.stopSweep != nil {
		s.stopSweep()
		<-s.sweepDone
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.client.Disconnect(ctx)
}

// Count implements store.EventStore with the collection's metadata count, which costs the
// same at any size and follows TTL deletions (MongoDB documents that it can be off after an
// unclean shutdown, or on a sharded cluster while chunks migrate).
func (s *Store) Count(ctx context.Context) (int64, error) {
	n, err := s.events.EstimatedDocumentCount(ctx)
	if err != nil {
		return 0, fmt.Errorf("mongostore: count: %w", err)
	}
	return n, nil
}

// DeadLetterCount implements store.EventStore.
func (s *Store) DeadLetterCount(ctx context.Context) (int64, error) {
	n, err := s.dlq.CountDocuments(ctx, bson.D{})
	if err != nil {
		return 0, fmt.Errorf("mongostore: count dead letters: %w", err)
	}
	return n, nil
}

// RecentEventIDs implements store.EventStore through the receivedAt index. Times have
// MongoDB's millisecond precision.
func (s *Store) RecentEventIDs(ctx context.Context, since time.Time, limit int, fn func(string, time.Time)) error {
	opts := options.Find().SetSort(bson.D{{Key: "receivedAt", Value: -1}}).
		SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "receivedAt", Value: 1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.events.Find(ctx, bson.D{{Key: "receivedAt", Value: bson.D{{Key: "$gte", Value: since}}}}, opts)
	if err != nil {
		return fmt.Errorf("mongostore: recent ids: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var d struct {
			ID         string    `bson:"_id"`
			ReceivedAt time.Time `bson:"receivedAt"`
		}
		if err := cur.Decode(&d); err != nil {
			return fmt.Errorf("mongostore: recent ids: %w", err)
		}
		fn(d.ID, d.ReceivedAt.UTC())
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("mongostore: recent ids: %w", err)
	}
	return nil
}
