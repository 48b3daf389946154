package redisqueue

import (
	"context"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/evp-dev/evp/internal/queue"
)

// PendingEventIDs implements queue.Queue: every entry of every stream, which hold only
// entries not yet acknowledged.
func (q *Queue) PendingEventIDs(ctx context.Context, fn func(eventID string)) error {
	if err := q.enter(); err != nil {
		return err
	}
	defer q.leave()
	const page = 1000
	for _, p := range q.parts {
		start := "-"
		for {
			xms, err := q.rdb.XRangeN(ctx, p.key, start, "+", page).Result()
			if err != nil {
				return q.wrap("pending ids", err)
			}
			for _, xm := range xms {
				id, _ := xm.Values["id"].(string)
				fn(id)
			}
			if len(xms) < page {
				break
			}
			start = "(" + xms[len(xms)-1].ID
		}
	}
	return nil
}

// Stats implements queue.Queue: XLEN, XPENDING (less the entries released by Nack) and the
// stream's entries-added, in one round trip, added up over the streams.
func (q *Queue) Stats(ctx context.Context) (queue.Stats, error) {
	if err := q.enter(); err != nil {
		return queue.Stats{}, err
	}
	defer q.leave()
	xlen := make([]*redis.IntCmd, len(q.parts))
	pend := make([]*redis.XPendingCmd, len(q.parts))
	info := make([]*redis.XInfoStreamCmd, len(q.parts))
	_, err := q.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, p := range q.parts {
			xlen[i] = pl.XLen(ctx, p.key)
			pend[i] = pl.XPending(ctx, p.key, q.group)
			info[i] = pl.XInfoStream(ctx, p.key)
		}
		return nil
	})
	if err != nil {
		return queue.Stats{}, q.wrap("stats", err)
	}
	var s queue.Stats
	for i := range q.parts {
		n := xlen[i].Val()
		s.Length += n
		s.TotalEnqueued += info[i].Val().EntriesAdded
		if p := pend[i].Val(); p != nil {
			s.Pending += p.Count - p.Consumers[NackConsumer]
		}
		if first := info[i].Val().FirstEntry.ID; first != "" && n > 0 {
			if ms, _, ok := parseID(first); ok {
				if at := time.UnixMilli(int64(ms)); s.OldestAt.IsZero() || at.Before(s.OldestAt) {
					s.OldestAt = at
				}
			}
		}
	}
	return s, nil
}

// ConsumerInfo is one consumer of a group.
type ConsumerInfo struct {
	Name    string
	Pending int64         // entries delivered to it and not yet acknowledged
	Idle    time.Duration // since its last read or claim
}

// GroupInfo describes one consumer group of the buffer, added up over its streams.
type GroupInfo struct {
	Name            string
	Pending         int64  // entries delivered and not yet acknowledged, Nacked included
	Nacked          int64  // entries released by Nack and not yet claimed again
	Lag             int64  // entries not yet delivered to the group; -1 when Redis cannot tell
	LastDeliveredID string // with several streams, the newest of theirs
	EntriesRead     int64
	Consumers       []ConsumerInfo // without NackConsumer; Idle is the least over the streams
}

// Groups describes every consumer group of the buffer with its consumers (XINFO GROUPS and
// XINFO CONSUMERS), for the metrics routes.
func (q *Queue) Groups(ctx context.Context) ([]GroupInfo, error) {
	if err := q.enter(); err != nil {
		return nil, err
	}
	defer q.leave()
	gcmds := make([]*redis.XInfoGroupsCmd, len(q.parts))
	_, err := q.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, p := range q.parts {
			gcmds[i] = pl.XInfoGroups(ctx, p.key)
		}
		return nil
	})
	if err != nil {
		return nil, q.wrap("groups", err)
	}
	ccmds := make([][]*redis.XInfoConsumersCmd, len(q.parts))
	_, err = q.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, p := range q.parts {
			for _, g := range gcmds[i].Val() {
				ccmds[i] = append(ccmds[i], pl.XInfoConsumers(ctx, p.key, g.Name))
			}
		}
		return nil
	})
	if err != nil {
		return nil, q.wrap("consumers", err)
	}
	var out []GroupInfo
	for i := range q.parts {
		for j, g := range gcmds[i].Val() {
			out = addGroup(out, g, ccmds[i][j].Val())
		}
	}
	return out, nil
}

// addGroup adds one stream's view of a group to the groups gathered so far.
func addGroup(out []GroupInfo, g redis.XInfoGroup, cs []redis.XInfoConsumer) []GroupInfo {
	k := slices.IndexFunc(out, func(gi GroupInfo) bool { return gi.Name == g.Name })
	if k < 0 {
		out = append(out, GroupInfo{Name: g.Name})
		k = len(out) - 1
	}
	gi := &out[k]
	gi.Pending += g.Pending
	gi.EntriesRead += g.EntriesRead
	if g.Lag < 0 || gi.Lag < 0 {
		gi.Lag = -1
	} else {
		gi.Lag += g.Lag
	}
	if newerID(g.LastDeliveredID, gi.LastDeliveredID) {
		gi.LastDeliveredID = g.LastDeliveredID
	}
	for _, c := range cs {
		if c.Name == NackConsumer {
			gi.Nacked += c.Pending
			continue
		}
		if isMarker(c.Name) {
			continue
		}
		m := slices.IndexFunc(gi.Consumers, func(ci ConsumerInfo) bool { return ci.Name == c.Name })
		if m < 0 {
			gi.Consumers = append(gi.Consumers, ConsumerInfo{Name: c.Name, Pending: c.Pending, Idle: c.Idle})
			continue
		}
		gi.Consumers[m].Pending += c.Pending
		gi.Consumers[m].Idle = min(gi.Consumers[m].Idle, c.Idle)
	}
	return out
}

// newerID reports whether stream id a comes after b ("" comes first).
func newerID(a, b string) bool {
	ams, aseq, aok := parseID(a)
	bms, bseq, bok := parseID(b)
	if !bok {
		return aok
	}
	return aok && (ams > bms || ams == bms && aseq > bseq)
}

// Describe describes the streams and every consumer group with its consumers, for GET
// /api/metrics/stream.
func (q *Queue) Describe(ctx context.Context) (queue.Description, error) {
	st, err := q.Stats(ctx)
	if err != nil {
		return queue.Description{}, err
	}
	groups, err := q.Groups(ctx)
	if err != nil {
		return queue.Description{}, err
	}
	desc := queue.Description{
		Backend: "redis", Stream: q.Key(), Partitions: q.Partitions(), Streams: q.Keys(),
		Length: st.Length, TotalEnqueued: st.TotalEnqueued, Groups: make([]queue.GroupDescription, 0, len(groups)),
	}
	for _, g := range groups {
		gd := queue.GroupDescription{Name: g.Name, Pending: g.Pending, Lag: g.Lag, LastDeliveredID: g.LastDeliveredID,
			Consumers: make([]queue.ConsumerDescription, 0, len(g.Consumers))}
		for _, c := range g.Consumers {
			gd.Consumers = append(gd.Consumers, queue.ConsumerDescription{Name: c.Name, Pending: c.Pending, Idle: c.Idle})
		}
		desc.Groups = append(desc.Groups, gd)
	}
	return desc, nil
}
