package redisqueue

import (
	"context"
	"testing"
	"time"
)

// Describe names the stream and the group, with the entries waiting and delivered and the
// consumer that holds them.
func TestDescribe(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	q := open(t, Options{Client: c, KeyPrefix: prefix, Stream: "events", Group: "workers", Consumer: "w1"})
	if err := q.Enqueue(ctx, entries("d", 3)); err != nil {
		t.Fatal(err)
	}
	msgs := fetchAll(t, q, 2, time.Second)
	if err := q.Ack(ctx, ids(msgs[:1])); err != nil {
		t.Fatal(err)
	}
	d, err := q.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Backend != "redis" || d.Stream != prefix+"events" || d.Length != 2 || d.TotalEnqueued != 3 || len(d.Streams) != 1 {
		t.Errorf("Describe = %+v, want stream %sevents with 2 of 3 entries left", d, prefix)
	}
	if len(d.Groups) != 1 {
		t.Fatalf("Groups = %+v, want one", d.Groups)
	}
	g := d.Groups[0]
	if g.Name != "workers" || g.Pending != 1 || g.Lag != 1 || g.LastDeliveredID == "" {
		t.Errorf("group = %+v, want workers with 1 pending, 1 not delivered", g)
	}
	var w1 int64 = -1
	for _, cd := range g.Consumers {
		if cd.Name == "w1" {
			w1 = cd.Pending
		}
	}
	if w1 != 1 {
		t.Errorf("consumers = %+v, want w1 holding 1", g.Consumers)
	}
	q.Close()
	if _, err := q.Describe(ctx); err == nil {
		t.Error("Describe after Close: no error")
	}
}
