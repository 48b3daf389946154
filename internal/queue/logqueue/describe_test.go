package logqueue

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/queue"
)

// Describe names the one stream and the workers' group, with the entries acknowledged,
// delivered and waiting.
func TestDescribe(t *testing.T) {
	ctx := context.Background()
	q := open(t, t.TempDir(), Options{NoFsync: true, Group: "evp-workers-group"})
	if err := q.Enqueue(ctx, []queue.Entry{{EventID: "a", Data: []byte("{}")}, {EventID: "b", Data: []byte("{}")}, {EventID: "c", Data: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
	msgs, err := q.Fetch(ctx, 2, time.Second)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("Fetch: %d messages, %v", len(msgs), err)
	}
	if err := q.Ack(ctx, []int64{msgs[0].ID}); err != nil {
		t.Fatal(err)
	}
	got, err := q.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := queue.Description{
		Backend: "embedded", Stream: "buffer", Partitions: 1, Streams: []string{"buffer"}, Length: 2, TotalEnqueued: 3,
		Groups: []queue.GroupDescription{{Name: "evp-workers-group", Pending: 1, Lag: 1,
			Consumers: []queue.ConsumerDescription{{Name: "workers (this process)", Pending: 1}}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Describe:\n got %+v\nwant %+v", got, want)
	}
	q.Close()
	if _, err := q.Describe(ctx); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Describe after Close: %v, want queue.ErrClosed", err)
	}
}
