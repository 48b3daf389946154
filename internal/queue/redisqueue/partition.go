package redisqueue

import (
	"context"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// MaxPartitions is the largest Options.Partitions.
const MaxPartitions = 256

// clusterSlots is the number of Redis Cluster hash slots.
const clusterSlots = 16384

// partBlock bounds one XREADGROUP BLOCK on a cluster with several streams: a worker blocks
// on one stream at a time there (a read of several needs them in one slot), so the slice is
// short to come back soon to the others. Redis ends blocks on its own timer tick (hz 10:
// every 100 ms), so a slice lasts up to about that much anyway.
const partBlock = 50 * time.Millisecond

// part is one stream of the buffer and the state Fetch keeps for it.
type part struct {
	idx int // position in Queue.parts, carried in message ids
	key string

	// claimMu serialises steps 1 and 2 of Fetch on this stream; a Fetch that finds it taken
	// skips them. It guards the fields below, except handed.
	claimMu     sync.Mutex
	claimCursor string    // XAUTOCLAIM cursor; "0-0" when a pass is complete
	lastPass    time.Time // when the last complete pass ended
	nacked      atomic.Bool
	recovered   bool   // step 2 is done
	recBound    string // last delivered id of the group at Open
	recCursor   string // XPENDING range start of step 2

	// handed lists the ids handed out by steps 1 and 2 while step 2 is not done, so that
	// step 2 skips them; nil afterwards. Guarded by Queue.mu.
	handed map[string]struct{}

	ensureMu sync.Mutex // serialises ensureGroup on this stream; guards marker
	marker   string     // the group's marker consumer seen last; "" before the first look
}

func newPart(idx int, key string) *part {
	return &part{idx: idx, key: key, claimCursor: "0-0"}
}

// partitionKeys returns the stream keys of n partitions of base. One partition is base
// itself, the name a single stream always had. Several are base+":{tag}", each tag chosen
// so that partition i hashes into the middle half of the i-th of n equal slot ranges: on a
// cluster whose masters own equal ranges (as redis-cli --cluster create makes them), n
// partitions spread evenly over m masters when n is a multiple of m.
func partitionKeys(base string, n int) ([]string, error) {
	if n < 1 || n > MaxPartitions {
		return nil, fmt.Errorf("redisqueue: %d partitions: must be from 1 to %d", n, MaxPartitions)
	}
	if n == 1 {
		return []string{base}, nil
	}
	if hasHashTag(base) {
		return nil, fmt.Errorf("redisqueue: stream key %q holds a hash tag, which would put every partition in one slot: remove it from the key prefix", base)
	}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = base + ":{" + partitionTag(i, n) + "}"
	}
	return keys, nil
}

// partitionTag is the first tag "p<i>.<k>" whose slot lies in the middle half of the i-th
// of n slot ranges (the margins absorb the rounding of real range boundaries).
func partitionTag(i, n int) string {
	lo, hi := i*clusterSlots/n, (i+1)*clusterSlots/n
	if w := hi - lo; w >= 4 {
		lo, hi = lo+w/4, hi-w/4
	}
	prefix := "p" + strconv.Itoa(i) + "."
	for k := 0; ; k++ {
		tag := prefix + strconv.Itoa(k)
		if s := int(crc16(tag) % clusterSlots); s >= lo && s < hi {
			return tag
		}
	}
}

// hasHashTag reports whether key holds a Redis Cluster hash tag: a non-empty {...}.
func hasHashTag(key string) bool {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return false
	}
	end := strings.IndexByte(key[open+1:], '}')
	return end > 0
}

// KeySlot is the Redis Cluster hash slot of key (the slot of its hash tag, if it holds one),
// as CLUSTER KEYSLOT computes it. go-redis keeps its own copy internal.
func KeySlot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	return int(crc16(key) % clusterSlots)
}

// crc16 is CRC-16/XMODEM, the checksum of Redis Cluster's key slots.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// partitionOf picks the partition of an event among n by FNV-1a of its id, so that entries
// spread evenly whatever the batch sizes.
func partitionOf(eventID string, n int) int {
	if n == 1 {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(eventID); i++ {
		h ^= uint32(eventID[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// registryKey lists every partition key any process ever wrote to (a set), so that a
// process started with another partition count finds the streams still holding entries.
func registryKey(base string) string { return base + ":partitions" }

// streamKeys returns the keys this process appends to (active) and the keys of other
// streams of base that still hold entries (leftovers of another partition count), which
// it reads until they are empty. With several partitions it first records its keys in the
// registry, so that a process with another count will drain them.
func streamKeys(ctx context.Context, rdb redis.UniversalClient, base string, n int) (active, leftover []string, err error) {
	active, err = partitionKeys(base, n)
	if err != nil {
		return nil, nil, err
	}
	reg := registryKey(base)
	if n > 1 {
		if err := rdb.SAdd(ctx, reg, active).Err(); err != nil {
			return nil, nil, fmt.Errorf("redisqueue: record partitions in %s: %w", reg, err)
		}
	}
	known, err := rdb.SMembers(ctx, reg).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("redisqueue: read partitions from %s: %w", reg, err)
	}
	var others []string
	for _, k := range append(known, base) {
		if !slices.Contains(active, k) && !slices.Contains(others, k) {
			others = append(others, k)
		}
	}
	if len(others) == 0 {
		return active, nil, nil
	}
	lens := make([]*redis.IntCmd, len(others))
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range others {
			lens[i] = p.XLen(ctx, k)
		}
		return nil
	}); err != nil && !isWrongType(err) {
		return nil, nil, fmt.Errorf("redisqueue: length of old partitions: %w", err)
	}
	for i, k := range others {
		if lens[i].Val() > 0 {
			leftover = append(leftover, k)
		}
	}
	return active, leftover, nil
}

// isWrongType reports a WRONGTYPE error: a key that is not a stream (an unrelated key
// named like base).
func isWrongType(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE")
}

// Message id encoding: ms<<seqBits | seq<<pbits | partition, where pbits is the number of
// bits the partition index needs (0 with one stream, so a single stream's ids are exactly
// EncodeID's). More partitions leave fewer bits to seq, but also fewer entries per stream
// and millisecond; an id that does not fit gets an alias (see Queue.encode).
const (
	seqBits = 20
	maxSeq  = 1<<seqBits - 1
	maxMs   = 1<<(63-seqBits) - 1
)

// partBits is the number of bits that hold a partition index among n.
func partBits(n int) uint { return uint(bits.Len(uint(n - 1))) }

func encodePartID(s string, p int, pbits uint) (int64, bool) {
	ms, seq, ok := parseID(s)
	if !ok || ms > maxMs || seq > maxSeq>>pbits {
		return 0, false
	}
	return int64(ms<<seqBits | seq<<pbits | uint64(p)), true
}

func decodePartID(id int64, pbits uint) (string, int) {
	u := uint64(id)
	p := int(u & (1<<pbits - 1))
	seq := (u & maxSeq) >> pbits
	return strconv.FormatUint(u>>seqBits, 10) + "-" + strconv.FormatUint(seq, 10), p
}
