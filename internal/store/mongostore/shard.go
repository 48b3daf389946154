package mongostore

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ErrNotMongos is returned by ShardEvents when the server is not a mongos: sharding is set
// up through the router of a sharded cluster only.
var ErrNotMongos = errors.New("the server is not a mongos (the router of a sharded cluster); sharding needs MONGO_URI to point at a mongos")

// IsMongos reports whether client is connected to a mongos (hello answers msg "isdbgrid").
func IsMongos(ctx context.Context, client *mongo.Client) (bool, error) {
	var hello struct {
		Msg string `bson:"msg"`
	}
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello); err != nil {
		return false, fmt.Errorf("mongostore: hello: %w", err)
	}
	return hello.Msg == "isdbgrid", nil
}

// ShardEvents enables sharding on database db and shards its events collection on
// {userId: "hashed"}. It is idempotent: a collection already sharded on that key is left as
// it is. It returns ErrNotMongos when the server is not a mongos.
func ShardEvents(ctx context.Context, client *mongo.Client, db string) error {
	ok, err := IsMongos(ctx, client)
	if err != nil {
		return err
	}
	if !ok {
		return ErrNotMongos
	}
	admin := client.Database("admin")
	if err := admin.RunCommand(ctx, bson.D{{Key: "enableSharding", Value: db}}).Err(); err != nil {
		return fmt.Errorf("mongostore: enableSharding %s: %w", db, err)
	}
	// The shard key needs an index when the collection already holds documents.
	events := client.Database(db).Collection(EventsCollection)
	if _, err := events.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "userId", Value: "hashed"}},
		Options: options.Index().SetName("userId_hashed")}); err != nil {
		return fmt.Errorf("mongostore: shard key index: %w", err)
	}
	if err := admin.RunCommand(ctx, bson.D{{Key: "shardCollection", Value: db + "." + EventsCollection},
		{Key: "key", Value: bson.D{{Key: "userId", Value: "hashed"}}}}).Err(); err != nil {
		return fmt.Errorf("mongostore: shardCollection %s.%s: %w", db, EventsCollection, err)
	}
	return nil
}
