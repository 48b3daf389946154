package redisqueue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// markerPrefix starts the name of the marker consumer of a group (see "Resets").
const markerPrefix = "~epoch."

// isMarker reports whether a consumer name is a group's marker.
func isMarker(name string) bool { return strings.HasPrefix(name, markerPrefix) }

// newMarker is a fresh marker name: the time it is made and random bits.
func newMarker() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return markerPrefix + strconv.FormatInt(time.Now().UnixMilli(), 10) + "." + hex.EncodeToString(b[:])
}

// ensureScript makes the stream and its group if either is missing (the group reading
// from the first entry) and gives the group a marker consumer if it has none, then answers
// {group made (0/1), stream existed (0/1), the marker's name}. When the group still holds
// the marker the caller saw last, one O(1) command tells (XGROUP CREATECONSUMER answers 0);
// otherwise, or when Redis refuses that command at maxmemory, it looks at the group's
// consumers, reading only, so that it runs at maxmemory too when nothing is missing.
// KEYS[1] stream; ARGV[1] group, ARGV[2] the marker seen last ("": none), ARGV[3] the
// marker to give a group that has none.
var ensureScript = redis.NewScript(`
if ARGV[2] ~= '' then
  local r = redis.pcall('XGROUP', 'CREATECONSUMER', KEYS[1], ARGV[1], ARGV[2])
  if r == 0 then
    return {0, 1, ARGV[2]}
  elseif r == 1 then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
  end
end
local existed = redis.call('EXISTS', KEYS[1])
local has = false
if existed == 1 then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    for i = 1, #g, 2 do
      if g[i] == 'name' and g[i + 1] == ARGV[1] then has = true end
    end
  end
end
local made = 0
if not has then
  redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
  made = 1
end
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  for i = 1, #c, 2 do
    if c[i] == 'name' and string.sub(c[i + 1], 1, 7) == '~epoch.' then
      return {made, existed, c[i + 1]}
    end
  end
end
redis.call('XGROUP', 'CREATECONSUMER', KEYS[1], ARGV[1], ARGV[3])
return {made, existed, ARGV[3]}
`)

// ensureGroup makes the stream p and its group if either is missing and checks the
// group's marker against the one this process saw last: another marker means the group
// was made again since, which is logged, counted and kept for Degraded.
func (q *Queue) ensureGroup(ctx context.Context, p *part) error {
	p.ensureMu.Lock()
	defer p.ensureMu.Unlock()
	res, err := ensureScript.Run(ctx, q.rdb, []string{p.key}, q.group, p.marker, newMarker()).Slice()
	if err == nil && len(res) != 3 {
		err = fmt.Errorf("unexpected answer %v", res)
	}
	if err != nil {
		return fmt.Errorf("redisqueue: create group %s on %s: %w", q.group, p.key, err)
	}
	made, _ := res[0].(int64)
	existed, _ := res[1].(int64)
	marker, _ := res[2].(string)
	prev := p.marker
	p.marker = marker
	switch {
	case prev == "" && made == 1:
		q.log.Info("buffer stream and group created", "stream", p.key, "group", q.group, "stream_existed", existed == 1)
	case prev != "" && prev != marker:
		r := &ResetError{Stream: p.key, Group: q.group, Found: FoundMarker, At: time.Now()}
		if made == 1 && existed == 0 {
			r.Found = FoundNoStream
		} else if made == 1 {
			r.Found = FoundNoGroup
		}
		q.resets.Add(1)
		q.lastReset.Store(r)
		q.log.Error("buffer stream or group vanished", "stream", p.key, "group", q.group, "found", r.Found, "err", r)
	}
	return nil
}

// What a process found when it saw a stream or group made again (ResetError.Found).
const (
	FoundNoStream = "stream"  // the stream was gone: it made the stream and group again
	FoundNoGroup  = "group"   // the stream was there without its group: it made the group again
	FoundMarker   = "another" // both were there, made again by another process
)

// ResetError reports a stream, or its consumer group, that vanished under the queue and
// was made again: Redis lost its data (a restart without persistence, a flush), or the key
// or group was deleted. Entries the stream held then are lost, unless only the group went.
type ResetError struct {
	Stream string
	Group  string
	Found  string    // FoundNoStream, FoundNoGroup or FoundMarker
	At     time.Time // when this process found out
}

func (e *ResetError) Error() string {
	at := e.At.UTC().Format(time.RFC3339)
	switch e.Found {
	case FoundNoStream:
		return fmt.Sprintf("redisqueue: stream %s and its consumer group %s vanished (found at %s) and were made again: "+
			"Redis lost its data (restarted without persistence, or flushed) or the key was deleted; "+
			"the events the stream held were lost", e.Stream, e.Group, at)
	case FoundNoGroup:
		return fmt.Sprintf("redisqueue: consumer group %s of stream %s vanished (found at %s) and was made again: "+
			"the group was deleted, or Redis lost its data and an append made the stream again; "+
			"events buffered before may have been lost", e.Group, e.Stream, at)
	default:
		return fmt.Sprintf("redisqueue: stream %s or its consumer group %s vanished and was made again by another process "+
			"(found at %s): Redis lost its data (restarted without persistence, or flushed) or the key or group was deleted; "+
			"events buffered before may have been lost", e.Stream, e.Group, at)
	}
}

// Resets is the number of times this queue found a stream or group made again under it.
func (q *Queue) Resets() int64 { return q.resets.Load() }

// LastReset is the last stream or group found made again, or nil.
func (q *Queue) LastReset() *ResetError { return q.lastReset.Load() }

// Degraded reports, without a round trip, why the buffer works but not as it should: a
// stream or group found made again within Options.ResetHold (a *ResetError), or a bound
// reached at the last look (an error wrapping queue.ErrFull). Nil when neither.
func (q *Queue) Degraded() error {
	if r := q.lastReset.Load(); r != nil && time.Since(r.At) < q.resetHold {
		return r
	}
	return q.full()
}

// watch checks the markers and reads the limits every watchEvery until Close.
func (q *Queue) watch() {
	defer close(q.watchDone)
	t := time.NewTicker(q.watchEvery)
	defer t.Stop()
	for {
		select {
		case <-q.closed:
			return
		case <-t.C:
		}
		if q.enter() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(q.watchEvery, 5*time.Second))
		// A pass that fails (Redis unreachable) is tried again at the next tick; the
		// operations under way report the outage.
		_ = q.watchOnce(ctx)
		cancel()
		q.leave()
	}
}

// watchOnce checks every stream's marker and reads the limits.
func (q *Queue) watchOnce(ctx context.Context) error {
	if err := q.ensureGroups(ctx); err != nil {
		return err
	}
	return q.refreshLimits(ctx)
}
