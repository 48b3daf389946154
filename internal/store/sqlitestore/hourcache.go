package sqlitestore

import (
	"context"
	"database/sql"
	"sync"

	"github.com/evp-dev/evp/internal/store"
)

// An unfiltered query reads the per-minute counts of its range and merges the sketch of
// each whole hour: for 7 days, some 100,000 rollup_minute rows and 336 sketches decoded,
// most of the query's time. A past hour rarely changes, so hourCache keeps what a query needs of each
// whole hour it read: per-minute totals, per-type counts and the decoded sketches, reused
// while the hour's generation in rollup_gen is unchanged (written by every build that
// changes the hour, by any process, and by retention; as userCache does for per-user rows).

// maxCachedHours bounds the hours kept (each up to about 35 KB with two dense sketches).
const maxCachedHours = 8 * 24

// hourRollup is one whole hour's unfiltered figures.
type hourRollup struct {
	gen    int64
	perMin [60]int64
	byType map[string]int64
	sketch *store.SketchPair // nil: no sketch stored
	used   uint64
}

type hourCache struct {
	mu    sync.Mutex
	hours map[int64]*hourRollup
	tick  uint64
	loads int // hours read from the database (for tests)
}

// add adds the whole hours [a, b) to buckets (from startMin, bucketMin wide), byType and acc,
// reading through tx the hours whose generation changed since they were cached. Counts are
// taken without the unbuilt events (see unbuiltCounts), so that a cached hour holds the
// events up to the watermark it was read at, as its sketch does: events after that in the
// hour give it a new generation once built.
func (c *hourCache) add(ctx context.Context, tx *sql.Tx, a, b, startMin, bucketMin int64, unbuilt map[rollupKey]int64, buckets []int64, byType map[string]int64, acc *store.SketchPair) error {
	gens, err := unitGens(ctx, tx, span{hour: true, a: a, b: b})
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hours == nil {
		c.hours = map[int64]*hourRollup{}
	}
	for h := a; h < b; h++ {
		hr, err := c.hour(ctx, tx, h, gens[h], unbuilt)
		if err != nil {
			return err
		}
		for m, n := range hr.perMin {
			if n != 0 {
				buckets[(h*60+int64(m)-startMin)/bucketMin] += n
			}
		}
		for t, n := range hr.byType {
			byType[t] += n
		}
		if hr.sketch != nil {
			if err := acc.Merge(hr.sketch); err != nil {
				return err
			}
		}
	}
	evictLRU(c.hours, len(c.hours), maxCachedHours, func(hr *hourRollup) uint64 { return hr.used }, func(*hourRollup) int { return 1 })
	return nil
}

// hour returns hour h's figures, reading them unless the cached ones have generation gen.
// Generation 0 (no rollup_gen row: no per-user rows, as after retention) is read every time
// and not kept.
func (c *hourCache) hour(ctx context.Context, tx *sql.Tx, h, gen int64, unbuilt map[rollupKey]int64) (*hourRollup, error) {
	c.tick++
	if hr := c.hours[h]; hr != nil && gen != 0 && hr.gen == gen {
		hr.used = c.tick
		return hr, nil
	}
	c.loads++
	hr := &hourRollup{gen: gen, byType: map[string]int64{}, used: c.tick}
	err := minuteCounts(ctx, tx, h*60, h*60+60, unbuilt, func(m int64, t string, n int64) {
		hr.perMin[m-h*60] += n
		hr.byType[t] += n
	})
	if err != nil {
		return nil, err
	}
	var u, s []byte
	switch err := tx.QueryRowContext(ctx, `SELECT users, sessions FROM sketch_hour WHERE hour = ?`, h).Scan(&u, &s); err {
	case nil:
		hr.sketch = store.NewSketchPair()
		if err := hr.sketch.Unmarshal(u, s); err != nil {
			return nil, err
		}
	case sql.ErrNoRows:
	default:
		return nil, err
	}
	if gen != 0 {
		c.hours[h] = hr
	} else {
		delete(c.hours, h)
	}
	return hr, nil
}
