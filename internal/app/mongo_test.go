package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/evp-dev/evp/internal/config"
	"github.com/evp-dev/evp/internal/testutil/ferret"
)

// TestMongoEventStore runs evp with MONGO_URI on a FerretDB: events posted over HTTP are in
// MongoDB exactly once, analytics answer from it, and while MongoDB is down the store routes
// answer 503 with Retry-After, health names mongodb, ingestion goes on, and the buffered
// events are stored once MongoDB is back.
func TestMongoEventStore(t *testing.T) {
	srv := ferret.Start(t)
	// One worker: FerretDB applies $inc as read, change, write, so two workers counting into
	// one rollup document at once can lose an increment there (MongoDB's single-document
	// updates are atomic). The store's concurrency is tested in mongostore.
	in := start(t, "", map[string]string{"MONGO_URI": srv.URI(), "MONGO_DATABASE": "evpapp", "EVP_WORKERS": "1"})

	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	events := client.Database("evpapp").Collection("events")

	base := time.Now().UTC().Truncate(time.Minute).Add(-3 * time.Minute)
	post := func(from, to int) {
		t.Helper()
		var evs []any
		for i := from; i < to; i++ {
			e := ev(fmt.Sprintf("mongo-e2e-%03d", i), []string{"page_view", "click"}[i%2])
			e["userId"], e["sessionId"] = fmt.Sprintf("u%d", i%4), fmt.Sprintf("s%d", i%6)
			e["timestamp"] = base.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano)
			evs = append(evs, e)
		}
		r := in.do("POST", "/api/v1/events/batch", mustJSON(t, map[string]any{"events": evs}), nil)
		if r.status != 202 && r.status != 200 {
			t.Fatalf("batch %d..%d: %d %s", from, to, r.status, r.raw)
		}
	}
	post(0, 40)
	post(20, 50) // 20 repeats: answered as duplicates, never stored twice
	in.waitStored(50)
	in.waitBufferEmpty()
	if n, err := events.CountDocuments(context.Background(), bson.D{}); err != nil || n != 50 {
		t.Fatalf("MongoDB holds %d events (%v), want 50", n, err)
	}
	if n, _ := events.CountDocuments(context.Background(), bson.D{{Key: "_id", Value: "mongo-e2e-007"}, {Key: "userId", Value: "u3"}}); n != 1 {
		t.Fatalf("event mongo-e2e-007 stored %d times, want once with its userId", n)
	}
	if n, _ := client.Database("evpapp").Collection("rollup_pending").CountDocuments(context.Background(), bson.D{}); n != 0 {
		t.Fatalf("%d batches left with an unfinished rollup", n)
	}

	q := "/api/v1/analytics/metrics?" + url.Values{
		"from": {base.Add(-2 * time.Minute).Format(time.RFC3339)},
		"to":   {base.Add(4 * time.Minute).Format(time.RFC3339)},
	}.Encode()
	r := in.do("GET", q, nil, nil)
	d := r.data()
	if r.status != 200 || d["totalEvents"] != 50.0 || d["uniqueUsers"] != 4.0 || d["uniqueSessions"] != 6.0 {
		t.Fatalf("analytics: %d %s", r.status, r.raw)
	}
	if top := d["topUsers"].([]any); len(top) != 4 || top[0].(map[string]any)["eventCount"] != 13.0 {
		t.Fatalf("topUsers: %v", top)
	}
	if r := in.do("GET", q+"&userId=U1", nil, nil); r.status != 200 || r.data()["totalEvents"] != 13.0 {
		t.Fatalf("analytics for U1: %d %s", r.status, r.raw)
	}
	r = in.do("GET", "/api/health", nil, nil)
	if svc, _ := r.body["services"].(map[string]any)["mongodb"].(map[string]any); r.status != 200 || svc["status"] != "up" {
		t.Fatalf("health: %d %s", r.status, r.raw)
	}

	// MongoDB goes down.
	srv.Stop()
	r = in.do("GET", "/api/health", nil, nil)
	if svc, _ := r.body["services"].(map[string]any)["mongodb"].(map[string]any); r.status != 503 || svc["status"] != "down" {
		t.Fatalf("health with MongoDB down: %d %s", r.status, r.raw)
	}
	operator := bearer(in.signInAs("ops@example.com")) // dead letters need a session; keys get 403
	for _, path := range []string{q + "&eventType=click", "/api/metrics", "/api/v1/dead-letters"} {
		var hdr map[string]string
		if strings.HasPrefix(path, "/api/v1/dead-letters") {
			hdr = operator
		}
		r = in.do("GET", path, nil, hdr)
		if r.status != 503 || r.header.Get("Retry-After") == "" || r.errorCode() != "SERVICE_UNAVAILABLE" {
			t.Fatalf("GET %s with MongoDB down: %d Retry-After=%q %s", path, r.status, r.header.Get("Retry-After"), r.raw)
		}
	}
	post(50, 60) // accepted into the buffer
	srv.Restart()

	deadline := time.Now().Add(90 * time.Second)
	var n int64
	for time.Now().Before(deadline) {
		if n, err = events.CountDocuments(context.Background(), bson.D{}); err == nil && n == 60 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n != 60 {
		t.Fatalf("after MongoDB came back it holds %d events, want 60", n)
	}
	in.waitBufferEmpty()
	dlq, err := client.Database("evpapp").Collection("events_dlq").CountDocuments(context.Background(), bson.D{})
	if err != nil || dlq != 0 {
		t.Fatalf("dead letters: %d (%v), want none", dlq, err)
	}
	r = in.do("GET", q+"&eventType=page_view", nil, nil)
	if r.status != 200 || r.data()["totalEvents"] != 30.0 {
		t.Fatalf("analytics after recovery: %d %s", r.status, r.raw)
	}
}

// EVP_MONGO_SHARD=true on a server that is not a mongos stops evp at start with a message
// naming the setting, instead of running unsharded unnoticed.
func TestMongoShardNeedsMongos(t *testing.T) {
	srv := ferret.Start(t)
	vars := map[string]string{"EVP_DATA_DIR": t.TempDir(), "PORT": "0", "SERVER_HOST": "127.0.0.1",
		"MONGO_URI": srv.URI(), "MONGO_DATABASE": "evpshard", "EVP_MONGO_SHARD": "true"}
	cfg, _, err := config.Load("evp", nil, func(k string) string { return vars[k] }, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = Run(ctx, RoleAll, cfg, Options{Version: "test", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Setting != "EVP_MONGO_SHARD" || !strings.Contains(ce.Reason, "not a mongos") {
		t.Fatalf("Run with EVP_MONGO_SHARD on a non-mongos = %v; want a config error naming EVP_MONGO_SHARD", err)
	}
}
