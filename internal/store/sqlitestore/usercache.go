package sqlitestore

import (
	"context"
	"database/sql"
	"sort"
	"sync"
)

// topUsers over a long range sums the per-user rows of every hour in it (and the minutes at
// its edges): 24 hours of 10,000 active users are over half a million rows, too many to read
// and group on every query. Those rows rarely change once their hour or minute is over, so
// userCache keeps each unit's counts in memory, compactly (interned user ids), and a query
// only adds them up. rollup_gen holds, for every minute and hour, the rollup_seq of the build
// that last changed its rows (written in the same transaction as the rows, by any process);
// a cached unit is reused only while that generation is unchanged, so late events, other
// processes' builds and retention are all seen.

// maxCachedUserRows bounds the per-user rows held (8 bytes each): about 24 MB, enough for
// 7 days of 15,000 active users per hour.
const maxCachedUserRows = 3_000_000

// maxInternedUsers bounds the user ids a cache interns (about 70 bytes each with the map
// entry): past it the cache starts over, so that a deployment with millions of distinct users
// a day pays in speed, not memory.
const maxInternedUsers = 1_500_000

// unitCounts is one minute's or hour's per-user event counts.
type unitCounts struct {
	gen    int64
	ids    []int32 // interned user ids
	counts []uint32
	used   uint64
}

type userCache struct {
	mu    sync.Mutex
	users interner
	units map[sketchKey]*unitCounts
	rows  int // sum of len(ids) over units
	tick  uint64
	acc   []int64 // scratch: the sum per interned id
	loads int     // units read from the database (for tests)
}

// rankedUser is one user's event count over a query's range.
type rankedUser struct {
	user  string
	count int64
}

// topCounts returns the limit users with the most events in spans (ties by user id), read
// through tx so that generations and rows come from one snapshot.
func (c *userCache) topCounts(ctx context.Context, tx *sql.Tx, spans []span, limit int) ([]rankedUser, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.units == nil {
		c.reset()
	}
	var units []*unitCounts
	for _, sp := range spans {
		gens, err := unitGens(ctx, tx, sp)
		if err != nil {
			return nil, err
		}
		for k := sp.a; k < sp.b; k++ {
			u, err := c.unit(ctx, tx, sketchKey{hour: sp.hour, k: k}, gens[k])
			if err != nil {
				return nil, err
			}
			units = append(units, u)
		}
	}
	if len(c.acc) < len(c.users.names) {
		c.acc = make([]int64, len(c.users.names))
	}
	acc := c.acc
	var seen []int32
	for _, u := range units {
		for i, id := range u.ids {
			if acc[id] == 0 {
				seen = append(seen, id)
			}
			acc[id] += int64(u.counts[i])
		}
	}
	top := make([]rankedUser, 0, limit+1)
	better := func(a, b rankedUser) bool { return a.count > b.count || a.count == b.count && a.user < b.user }
	for _, id := range seen {
		r := rankedUser{user: c.users.names[id], count: acc[id]}
		acc[id] = 0
		if len(top) == limit && !better(r, top[limit-1]) {
			continue
		}
		i := sort.Search(len(top), func(i int) bool { return better(r, top[i]) })
		top = append(top, rankedUser{})
		copy(top[i+1:], top[i:])
		top[i] = r
		if len(top) > limit {
			top = top[:limit]
		}
	}
	c.evict()
	return top, nil
}

// reset empties the cache.
func (c *userCache) reset() {
	c.units, c.users, c.acc, c.rows = map[sketchKey]*unitCounts{}, newInterner(), nil, 0
}

// unitGens reads the generation of every unit in sp that has one (a unit without one has no
// rows, or had them removed by retention: generation 0).
func unitGens(ctx context.Context, tx *sql.Tx, sp span) (map[int64]int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT unit, seq FROM rollup_gen WHERE hour = ? AND unit >= ? AND unit < ?`, sp.hour, sp.a, sp.b)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	gens := map[int64]int64{}
	for rows.Next() {
		var unit, seq int64
		if err := rows.Scan(&unit, &seq); err != nil {
			return nil, err
		}
		gens[unit] = seq
	}
	return gens, rows.Err()
}

// unit returns key's counts, reading them again unless the cached ones have generation gen.
func (c *userCache) unit(ctx context.Context, tx *sql.Tx, key sketchKey, gen int64) (*unitCounts, error) {
	c.tick++
	if u := c.units[key]; u != nil && u.gen == gen {
		u.used = c.tick
		return u, nil
	}
	u := &unitCounts{gen: gen, used: c.tick}
	c.loads++
	if gen != 0 {
		q := `SELECT user_id, count FROM user_minute WHERE minute = ?`
		if key.hour {
			q = `SELECT user_id, count FROM user_hour WHERE hour = ?`
		}
		rows, err := tx.QueryContext(ctx, q, key.k)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var user string
			var n int64
			if err := rows.Scan(&user, &n); err != nil {
				rows.Close()
				return nil, err
			}
			u.ids = append(u.ids, c.users.id(user))
			u.counts = append(u.counts, uint32(n))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	if old := c.units[key]; old != nil {
		c.rows -= len(old.ids)
	}
	c.units[key] = u
	c.rows += len(u.ids)
	return u, nil
}

// evict drops the least recently used units above maxCachedUserRows, and starts over when
// the interned names outgrow what the cache holds (users no longer seen).
func (c *userCache) evict() {
	if len(c.users.names) > maxInternedUsers {
		c.reset()
		return
	}
	c.rows = evictLRU(c.units, c.rows, maxCachedUserRows,
		func(u *unitCounts) uint64 { return u.used }, func(u *unitCounts) int { return len(u.ids) })
}
