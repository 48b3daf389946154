package redisqueue

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/queue/queuetest"
	"github.com/evp-dev/evp/internal/testutil"
)

// partitionedContract is the contract suite for a buffer of n streams: one FIFO order
// holds only within each stream, so the suite checks the order per stream (by the same
// hash Enqueue uses) and everything else as for one stream.
func partitionedContract(n int) queuetest.Options {
	return queuetest.Options{
		Unordered: true,
		Partition: func(eventID string) int { return partitionOf(eventID, n) },
	}
}

// TestContractPartitioned runs the contract suite on 4 streams of the single test Redis.
func TestContractPartitioned(t *testing.T) {
	c := testClient(t)
	const n = 4
	queuetest.RunOptions(t, partitionedContract(n), func(t *testing.T) queuetest.Storage {
		prefix := testPrefix(t, c)
		return func() (queue.Queue, error) {
			q, err := Open(context.Background(), Options{URL: redisURL(), KeyPrefix: prefix, Consumer: "contract", Partitions: n})
			if err != nil {
				return nil, err
			}
			if q.Partitions() != n {
				q.Close()
				return nil, fmt.Errorf("Partitions() = %d, want %d", q.Partitions(), n)
			}
			return q, nil
		}
	})
}

// TestClusterContract runs the contract suite on 3 streams of a 3-master Redis Cluster
// started by the test, one stream on each master.
func TestClusterContract(t *testing.T) {
	addrs := testutil.RedisCluster(t, 3)
	cc := testutil.RedisClusterClient(t, addrs)
	const n = 3
	var seq atomic.Int64
	queuetest.RunOptions(t, partitionedContract(n), func(t *testing.T) queuetest.Storage {
		// The cluster lives only as long as the test: a fresh prefix per subtest suffices.
		prefix := fmt.Sprintf("evpcontract:%d:", seq.Add(1))
		return func() (queue.Queue, error) {
			// The shared cluster client is not closed by Close (Options.Client).
			q, err := Open(context.Background(), Options{Client: cc, KeyPrefix: prefix, Consumer: "contract", Partitions: n})
			if err != nil {
				return nil, err
			}
			return q, nil
		}
	})
}
