package dedup

import (
	"strconv"
	"sync"
	"time"

	"github.com/zeebo/xxh3"
)

// The Redis dedup window stores each id compactly instead of as a key of its own.
//
// An id is hashed (128-bit xxh3) into a bucket (RedisBuckets of them, 15 bits) and a
// 64-bit fingerprint. The window is cut into RedisSlices slices; the ids recorded during
// one slice are members of that slice's set of their bucket, the key
// Prefix+"{<bucket>}:<slice>". A fingerprint is stored as a decimal integer, so that each
// set stays an intset (8 bytes a member, while it holds at most set-max-intset-entries,
// 512 by default; past that Redis turns it into a hash table several times larger), and a
// set expires as a whole, with one TTL, once no check looks at its slice any more. At a
// steady r ids/s a set holds r*Window/RedisSlices/RedisBuckets ids (229 at 50,000/s with a
// 10-minute window): beyond about 100,000/s with that window, raise
// set-max-intset-entries.
//
// A check asks the sets of the id's bucket in the current slice and the RedisSlices
// before it; a record adds to the current one. So an id is answered as a duplicate for at
// least the window and at most the window and one slice (a quarter of the window more).
//
// Two ids are mistaken for each other only if both their buckets and fingerprints agree
// (79 bits): with n ids in the sets a check looks at, the chance that a new id is taken
// for a duplicate is n/2^79, about 6e-17 for the up to 37.5 million ids a 10-minute window
// holds at 50,000 events/s (12.5 minutes of them): about one event in 10,000 years at
// that rate.
//
// The bucket is the key's hash tag: on a Redis Cluster the sets of one bucket share a
// slot, and the buckets spread over every slot.
const (
	RedisSlices  = 4
	RedisBuckets = 1 << 15
)

// redisClockSkew keeps a slice's sets this much longer than their last check needs, for
// replicas whose clocks disagree a little.
const redisClockSkew = 2 * time.Second

// RedisKeys computes the compact layout of a dedup window in Redis, shared by Redis (the
// Set) and the Redis buffer's one-step dedup and append, so that both see the same ids.
type RedisKeys struct {
	Prefix string        // key prefix, e.g. "evp:dedup:"
	Window time.Duration // the dedup window
}

// SliceLen is the length of one slice: Window/RedisSlices, at least 1 ms.
func (k RedisKeys) SliceLen() time.Duration {
	return max(k.Window/RedisSlices, time.Millisecond)
}

// Slice is the number of the slice t falls in.
func (k RedisKeys) Slice(t time.Time) int64 {
	return t.UnixMilli() / k.SliceLen().Milliseconds()
}

// Slices returns the slices a check at t looks at, the current one first.
func (k RedisKeys) Slices(t time.Time) []int64 {
	cur := k.Slice(t)
	out := make([]int64, RedisSlices+1)
	for i := range out {
		out[i] = cur - int64(i)
	}
	return out
}

// TTL is how long a set written at t must live: until the last check that looks at its
// slice, RedisSlices slices after the current one, plus a margin for clock skew.
func (k RedisKeys) TTL(t time.Time) time.Duration {
	sl := k.SliceLen().Milliseconds()
	end := (k.Slice(t) + RedisSlices + 1) * sl
	return time.Duration(end-t.UnixMilli())*time.Millisecond + redisClockSkew
}

// Hash is where an id lives in the layout: its bucket, the bucket's hash tag
// ("{<hex>}") and its fingerprint as a set member (a decimal int64).
type Hash struct {
	Bucket uint32
	Tag    string
	Member string
}

// HashID hashes an event id.
func HashID(id string) Hash {
	h := xxh3.HashString128(id)
	b := uint32(h.Lo % RedisBuckets)
	return Hash{
		Bucket: b,
		Tag:    "{" + strconv.FormatUint(uint64(b), 16) + "}",
		Member: strconv.FormatInt(int64(h.Hi), 10),
	}
}

// Key is the set of the bucket tag in slice s.
func (k RedisKeys) Key(tag string, s int64) string {
	return k.Prefix + tag + ":" + strconv.FormatInt(s, 10)
}

// expiringPeriod is how long Expiring trusts that a set it gave a TTL still has it.
const expiringPeriod = 10 * time.Second

// Expiring remembers the sets of the current slice this process gave their TTL, so that a
// record sets a set's TTL when its write makes the set, not on every write (PEXPIRE costs
// Redis about as much as the SADD). A record that adds to a set must set its TTL when Need
// says so and the add made the set, or may have (SADD answered 1); Mark then notes the
// bucket. So every set gets its TTL from the record that makes it, unless the set was
// deleted and made again under a process that had noted it: Expiring forgets every 10 s
// and at each new slice, after which the next record of each process sets the TTL again.
// Safe for concurrent use.
type Expiring struct {
	mu    sync.Mutex
	keys  RedisKeys
	slice int64
	since time.Time
	bits  [RedisBuckets / 64]uint64
}

// Need reports for each hash whether a record of it in slice s (of keys) at now must set
// the TTL of its set: whether its bucket is not noted.
func (e *Expiring) Need(keys RedisKeys, s int64, now time.Time, hs []Hash) []bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if keys != e.keys || s != e.slice || now.Sub(e.since) >= expiringPeriod || now.Before(e.since) {
		e.keys, e.slice, e.since = keys, s, now
		e.bits = [RedisBuckets / 64]uint64{}
	}
	need := make([]bool, len(hs))
	for i, h := range hs {
		need[i] = e.bits[h.Bucket/64]&(1<<(h.Bucket%64)) == 0
	}
	return need
}

// Mark notes the buckets of the hashes whose set got its TTL (need and added both true),
// unless the slice or the layout changed since Need.
func (e *Expiring) Mark(keys RedisKeys, s int64, hs []Hash, need, added []bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if keys != e.keys || s != e.slice {
		return
	}
	for i, h := range hs {
		if need[i] && added[i] {
			e.bits[h.Bucket/64] |= 1 << (h.Bucket % 64)
		}
	}
}
