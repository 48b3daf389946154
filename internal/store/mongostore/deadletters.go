package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/evp-dev/evp/internal/store"
)

// A dead letter's id is its ObjectId in hex, created by the store as it writes the letters,
// and newest first is descending _id: exact for the letters of one process (an ObjectId
// holds a per-process counter), to the second between processes (it starts with the time in
// seconds). The list cursor is the id of the last letter of a page.

type letterDoc struct {
	ID       bson.ObjectID `bson:"_id"`
	EventID  string        `bson:"eventId,omitempty"`
	Data     []byte        `bson:"data"`
	Error    string        `bson:"error"`
	Attempts int           `bson:"attempts"`
	FailedAt time.Time     `bson:"failedAt"`
	FailedNs int64         `bson:"failedAtNs"`
}

func (d *letterDoc) stored() store.StoredDeadLetter {
	at := time.Unix(0, d.FailedNs).UTC()
	if d.FailedNs == 0 {
		at = d.FailedAt.UTC()
	}
	return store.StoredDeadLetter{ID: d.ID.Hex(), DeadLetter: store.DeadLetter{
		EventID: d.EventID, Data: d.Data, Error: d.Error, Attempts: d.Attempts, FailedAt: at}}
}

// DeadLetter implements store.EventStore with one ordered insert.
func (s *Store) DeadLetter(ctx context.Context, letters []store.DeadLetter) error {
	if len(letters) == 0 {
		return nil
	}
	docs := make([]any, len(letters))
	for i, l := range letters {
		docs[i] = letterDoc{ID: bson.NewObjectID(), EventID: l.EventID, Data: l.Data, Error: l.Error,
			Attempts: l.Attempts, FailedAt: l.FailedAt, FailedNs: l.FailedAt.UnixNano()}
	}
	if _, err := s.dlq.InsertMany(ctx, docs); err != nil {
		return fmt.Errorf("mongostore: dead-letter: %w", err)
	}
	return nil
}

// ListDeadLetters implements store.DeadLetters, newest (highest _id) first.
func (s *Store) ListDeadLetters(ctx context.Context, cursor string, limit int) ([]store.StoredDeadLetter, string, error) {
	if limit <= 0 {
		return nil, "", fmt.Errorf("mongostore: list dead letters: limit %d", limit)
	}
	filter := bson.D{}
	if cursor != "" {
		oid, err := bson.ObjectIDFromHex(cursor)
		if err != nil {
			return nil, "", store.ErrInvalidCursor
		}
		filter = bson.D{{Key: "_id", Value: bson.D{{Key: "$lt", Value: oid}}}}
	}
	// One letter more than asked says whether another page follows.
	cur, err := s.dlq.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(int64(limit)+1))
	if err != nil {
		return nil, "", fmt.Errorf("mongostore: list dead letters: %w", err)
	}
	var docs []letterDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, "", fmt.Errorf("mongostore: list dead letters: %w", err)
	}
	next := ""
	if len(docs) > limit {
		docs = docs[:limit]
		next = docs[limit-1].ID.Hex()
	}
	letters := make([]store.StoredDeadLetter, len(docs))
	for i := range docs {
		letters[i] = docs[i].stored()
	}
	return letters, next, nil
}

// GetDeadLetter implements store.DeadLetters.
func (s *Store) GetDeadLetter(ctx context.Context, id string) (store.StoredDeadLetter, error) {
	oid, err := bson.ObjectIDFromHex(id)
	if err != nil {
		return store.StoredDeadLetter{}, store.ErrNotFound
	}
	var d letterDoc
	err = s.dlq.FindOne(ctx, bson.D{{Key: "_id", Value: oid}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.StoredDeadLetter{}, store.ErrNotFound
	}
	if err != nil {
		return store.StoredDeadLetter{}, fmt.Errorf("mongostore: get dead letter: %w", err)
	}
	return d.stored(), nil
}

// DeleteDeadLetters implements store.DeadLetters. Ids this store never handed out count as
// absent.
func (s *Store) DeleteDeadLetters(ctx context.Context, ids []string) (int, error) {
	oids := make([]bson.ObjectID, 0, len(ids))
	for _, id := range ids {
		if oid, err := bson.ObjectIDFromHex(id); err == nil {
			oids = append(oids, oid)
		}
	}
	if len(oids) == 0 {
		return 0, nil
	}
	res, err := s.dlq.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: oids}}}})
	if err != nil {
		return 0, fmt.Errorf("mongostore: delete dead letters: %w", err)
	}
	return int(res.DeletedCount), nil
}
