package redisqueue

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/evp-dev/evp/internal/dedup"
	"github.com/evp-dev/evp/internal/queue"
)

// ErrUniqueUnsupported means EnqueueUnique cannot run on this client: a Redis Cluster
// would need the dedup keys in the stream's slot. Callers fall back to a separate dedup
// check and append.
var ErrUniqueUnsupported = errors.New("redisqueue: EnqueueUnique needs a single Redis node")

// uniqueScript appends each entry whose id is not in the dedup window and records the id
// there, in one atomic step per call: an id is marked seen only together with its append,
// and two API replicas racing on one id cannot both append it. A repeat inside the call is
// a duplicate too. The window is dedup.RedisKeys's layout: the id's fingerprint is looked
// for (SISMEMBER) in its bucket's sets of the slices before the current one, then added to
// the current one's (SADD), whose answer says whether it was there already. A new id's set
// gets its TTL when the caller asks (see dedup.Expiring). Should the append fail, the
// record is taken back, so that a retry is not taken for a duplicate.
//
// Nothing is appended when a stream the call would append to holds the bound or more
// entries: the script answers an error starting with "EVPFULL".
//
// KEYS are the streams. ARGV: [1] key prefix, [2] the bound (0: none), [3] the TTL in ms
// of the current slice's sets, [4] the number n of slices, [5..4+n] the slices' key
// suffixes (":<slice>", the current one first), then (index in KEYS, id, data, bucket
// tag, fingerprint, "1" to set the TTL) for each entry.
var uniqueScript = redis.NewScript(`
local prefix, bound, ttl, n = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local first = 5 + n
local count = (#ARGV - first + 1) / 6
if bound > 0 then
  local asked = {}
  for i = 0, count - 1 do
    local s = ARGV[first + 6 * i]
    if not asked[s] then
      asked[s] = true
      local key = KEYS[tonumber(s)]
      local len = redis.call('XLEN', key)
      if len >= bound then
        return redis.error_reply('EVPFULL stream ' .. key .. ' holds ' .. len .. ' entries not yet acknowledged, the bound is ' .. bound)
      end
    end
  end
end
local out = {}
for i = 0, count - 1 do
  local a = first + 6 * i
  local tag, member = ARGV[a + 3], ARGV[a + 4]
  local new = 1
  for j = 6, first - 1 do
    if redis.call('SISMEMBER', prefix .. tag .. ARGV[j], member) == 1 then
      new = 0
      break
    end
  end
  if new == 1 then
    local set = prefix .. tag .. ARGV[5]
    new = redis.call('SADD', set, member)
    if new == 1 then
      local ok = redis.pcall('XADD', KEYS[tonumber(ARGV[a])], '*', 'id', ARGV[a + 1], 'd', ARGV[a + 2])
      if type(ok) == 'table' and ok.err then
        redis.call('SREM', set, member)
        return ok
      end
      if ARGV[a + 5] == '1' then
        redis.call('PEXPIRE', set, ttl)
      end
    end
  end
  out[i + 1] = new
end
return out
`)

// EnqueueUnique appends the entries whose event id is not in the dedup window (the layout
// of dedup.RedisKeys with dedupPrefix and window ttl, which dedup.Redis shares) and records
// them there, in one round trip. It reports for each entry whether it was appended. Each
// entry goes to the stream Enqueue would pick; the script may touch several streams as
// they all live on the one node. Like Enqueue, it refuses with an error wrapping
// queue.ErrFull, appending nothing, when Redis memory is near full or a stream it would
// append to holds Options.MaxLen entries.
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
	if err := q.memoryFull(); err != nil {
		return nil, q.wrap("enqueue", err)
	}
	keys := dedup.RedisKeys{Prefix: dedupPrefix, Window: ttl}
	now := q.now()
	slices := keys.Slices(now)
	hs := make([]dedup.Hash, len(entries))
	for i, e := range entries {
		hs[i] = dedup.HashID(e.EventID)
	}
	expire := q.expiring.Need(keys, slices[0], now, hs)
	args := make([]any, 0, 4+len(slices)+6*len(entries))
	args = append(args, dedupPrefix, q.maxLen, keys.TTL(now).Milliseconds(), len(slices))
	for _, s := range slices {
		args = append(args, ":"+strconv.FormatInt(s, 10))
	}
	for i, e := range entries {
		flag := "0"
		if expire[i] {
			flag = "1"
		}
		args = append(args, partitionOf(e.EventID, q.active)+1, e.EventID, e.Data, hs[i].Tag, hs[i].Member, flag)
	}
	res, err := uniqueScript.Run(ctx, q.rdb, q.activeKeys, args...).Int64Slice()
	if err != nil {
		return nil, q.wrap("enqueue", scriptFull(err))
	}
	added := make([]bool, len(entries))
	for i := range added {
		added[i] = i < len(res) && res[i] == 1
	}
	q.expiring.Mark(keys, slices[0], hs, expire, added)
	return added, nil
}
