package redisqueue

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/evp-dev/evp/internal/queue"
)

// ErrUniqueUnsupported means EnqueueUnique cannot run on this client: a Redis Cluster
// would need the dedup keys in the stream's slot. Callers fall back to a separate dedup
// check and append.
var ErrUniqueUnsupported = errors.New("redisqueue: EnqueueUnique needs a single Redis node")

// uniqueScript appends each entry whose dedup key does not exist and sets the key, in one
// atomic step per call: an id is marked seen only together with its append, and two API
// replicas racing on one id cannot both append it. A repeat inside the call is a duplicate
// too. KEYS are the streams; ARGV: dedup key prefix, TTL in ms, then (index in KEYS, id,
// data) triples.
var uniqueScript = redis.NewScript(`
local out = {}
local n = (#ARGV - 2) / 3
for i = 1, n do
  local id = ARGV[3 * i + 1]
  local k = ARGV[1] .. id
  if redis.call('EXISTS', k) == 1 then
    out[i] = 0
  else
    redis.call('XADD', KEYS[tonumber(ARGV[3 * i])], '*', 'id', id, 'd', ARGV[3 * i + 2])
    redis.call('SET', k, 1, 'PX', ARGV[2])
    out[i] = 1
  end
end
return out
`)

// EnqueueUnique appends the entries whose event id is not in the dedup window (keys
// dedupPrefix+id, kept for ttl, the same keys as dedup.Redis) and records them there, in
// one round trip. It reports for each entry whether it was appended. Each entry goes to the
// stream Enqueue would pick; the script may touch several streams as they all live on the
// one node.
func (q *Queue) EnqueueUnique(ctx context.Context, entries []queue.Entry, dedupPrefix string, ttl time.Duration) ([]bool, error) {
	if q.cluster {
		return nil, ErrUniqueUnsupported
	}
	if err := q.enter(); err != nil {
		return nil, err
	}
	defer q.leave()
	if len(entries) == 0 {
		return nil, nil
	}
	args := make([]any, 0, 2+3*len(entries))
	args = append(args, dedupPrefix, strconv.FormatInt(max(ttl.Milliseconds(), 1), 10))
	for _, e := range entries {
		args = append(args, partitionOf(e.EventID, q.active)+1, e.EventID, e.Data)
	}
	res, err := uniqueScript.Run(ctx, q.rdb, q.activeKeys, args...).Int64Slice()
	if err != nil {
		return nil, q.wrap("enqueue", err)
	}
	added := make([]bool, len(entries))
	for i := range added {
		added[i] = i < len(res) && res[i] == 1
	}
	return added, nil
}
