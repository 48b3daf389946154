package logqueue

import (
	"context"

	"github.com/evp-dev/evp/internal/queue"
)

// Describe describes the buffer as one stream, "buffer", read by one consumer group
// (Options.Group): the workers of this process.
func (q *Queue) Describe(ctx context.Context) (queue.Description, error) {
	st, err := q.Stats(ctx)
	if err != nil {
		return queue.Description{}, err
	}
	return queue.Description{
		Backend: "embedded", Stream: "buffer", Partitions: 1, Streams: []string{"buffer"},
		Length: st.Length, TotalEnqueued: st.TotalEnqueued,
		Groups: []queue.GroupDescription{{
			Name: q.opts.Group, Pending: st.Pending, Lag: st.Length - st.Pending,
			Consumers: []queue.ConsumerDescription{{Name: "workers (this process)", Pending: st.Pending}},
		}},
	}, nil
}
