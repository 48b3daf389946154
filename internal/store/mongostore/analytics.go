package mongostore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/evp-dev/evp/internal/store"
)

// topUsersLimit is how many users topUsers lists.
const topUsersLimit = 10

// Analytics implements store.Analyzer with the figures of the SQLite store. Without a userId
// filter, counts come from rollup_minute (exact) and distinct counts from the sketches (hour
// sketches for whole hours, minute sketches for the edges); with an eventType filter the
// distinct counts are counted from the raw events of that type (exact). With a userId filter
// every figure comes from the raw events of the range (exact): the server narrows them with a
// case-insensitive regular expression and the store keeps those whose userId contains the
// filter under ASCII case folding, as the SQLite store's lower() does. topUsers reads the raw
// events of the range.
//
// Without a userId filter the figures are read one after another (rollup_minute, then the
// sketches, then the raw events for topUsers) with no snapshot across them, while a batch
// being stored may be counted and not yet in the sketches: such a result is marked
// Unsettled (see writeState and the package documentation). With a userId filter every
// figure comes from one pass over the raw events and covers the same events.
func (s *Store) Analytics(ctx context.Context, q store.AnalyticsQuery) (store.AnalyticsResult, error) {
	var before writeState
	var err error
	if q.UserID == "" {
		if before, err = s.writeState(ctx); err != nil {
			return store.AnalyticsResult{}, err
		}
	}
	res, err := s.analytics(ctx, q)
	if err != nil {
		return store.AnalyticsResult{}, fmt.Errorf("mongostore: analytics: %w", err)
	}
	if q.UserID == "" {
		after, err := s.writeState(ctx)
		if err != nil {
			return store.AnalyticsResult{}, err
		}
		res.Unsettled = before.pending || after.pending || before.finished != after.finished
	}
	return res, nil
}

// finishedID is the document of rollup_writes that counts finished InsertBatch calls.
const finishedID = "finished"

// writeState is what Analytics compares before and after it reads: whether an InsertBatch
// call is registered in rollup_pending, and how many have finished.
type writeState struct {
	pending  bool
	finished int64
}

func (s *Store) writeState(ctx context.Context) (writeState, error) {
	var w writeState
	err := s.pending.FindOne(ctx, bson.D{}, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	switch {
	case err == nil:
		w.pending = true
	case !errors.Is(err, mongo.ErrNoDocuments):
		return w, fmt.Errorf("mongostore: analytics: pending writes: %w", err)
	}
	var doc struct {
		N int64 `bson:"n"`
	}
	err = s.writes.FindOne(ctx, bson.D{{Key: "_id", Value: finishedID}}).Decode(&doc)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return w, fmt.Errorf("mongostore: analytics: finished writes: %w", err)
	}
	w.finished = doc.N
	return w, nil
}

func (s *Store) analytics(ctx context.Context, q store.AnalyticsQuery) (store.AnalyticsResult, error) {
	t, err := store.NewTally(q)
	if err != nil {
		return store.AnalyticsResult{}, err
	}
	var res store.AnalyticsResult
	startT, endT := time.Unix(t.StartMin*60, 0).UTC(), time.Unix(t.EndMin*60, 0).UTC()
	match := bson.D{{Key: "timestamp", Value: bson.D{{Key: "$gte", Value: startT}, {Key: "$lt", Value: endT}}}}
	if q.EventType != "" {
		match = append(match, bson.E{Key: "eventType", Value: q.EventType})
	}

	if q.UserID != "" {
		return s.rawAnalytics(ctx, q, t, match)
	}
	rf := bson.D{{Key: "m", Value: bson.D{{Key: "$gte", Value: t.StartMin}, {Key: "$lt", Value: t.EndMin}}}}
	if q.EventType != "" {
		rf = append(rf, bson.E{Key: "t", Value: q.EventType})
	}
	cur, err := s.rollups.Find(ctx, rf, options.Find().SetProjection(bson.D{{Key: "m", Value: 1}, {Key: "t", Value: 1}, {Key: "c", Value: 1}}))
	if err != nil {
		return res, err
	}
	var rows []struct {
		M int64  `bson:"m"`
		T string `bson:"t"`
		C int64  `bson:"c"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return res, err
	}
	for _, r := range rows {
		if r.C != 0 { // a minute whose events of the type were all deleted (forget.go)
			t.Add(r.M, r.T, r.C)
		}
	}
	if q.EventType == "" {
		if res.UniqueUsers, res.UniqueSessions, err = s.sketchEstimate(ctx, t.StartMin, t.EndMin); err != nil {
			return res, err
		}
	} else {
		if res.UniqueUsers, err = s.countDistinct(ctx, match, "$userId"); err != nil {
			return res, err
		}
		if res.UniqueSessions, err = s.countDistinct(ctx, match, "$sessionId"); err != nil {
			return res, err
		}
	}
	if res.TopUsers, err = s.topUsers(ctx, match); err != nil {
		return res, err
	}
	t.Finish(&res)
	return res, nil
}

// countDistinct counts the distinct values of field among the events matching match.
func (s *Store) countDistinct(ctx context.Context, match bson.D, field string) (int64, error) {
	cur, err := s.events.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: match}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: field}}}},
		{{Key: "$count", Value: "n"}},
	})
	if err != nil {
		return 0, err
	}
	var out []struct {
		N int64 `bson:"n"`
	}
	if err := cur.All(ctx, &out); err != nil {
		return 0, err
	}
	if len(out) == 0 {
		return 0, nil
	}
	return out[0].N, nil
}

// topUsers finds the most active users among the events matching match in three steps that
// each use only what both MongoDB and FerretDB run: the ten largest per-user counts ($group
// with $sum, $sort, $limit), their event types ($group on user and type), and each one's last
// event through the (userId, timestamp) index.
func (s *Store) topUsers(ctx context.Context, match bson.D) ([]store.TopUser, error) {
	cur, err := s.events.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: match}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$userId"}, {Key: "c", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
		{{Key: "$sort", Value: bson.D{{Key: "c", Value: -1}, {Key: "_id", Value: 1}}}},
		{{Key: "$limit", Value: topUsersLimit}},
	})
	if err != nil {
		return nil, err
	}
	var top []struct {
		ID string `bson:"_id"`
		C  int64  `bson:"c"`
	}
	if err := cur.All(ctx, &top); err != nil {
		return nil, err
	}
	if len(top) == 0 {
		return []store.TopUser{}, nil
	}
	out := make([]store.TopUser, len(top))
	ids := make([]string, len(top))
	index := map[string]int{}
	for i, t := range top {
		out[i] = store.TopUser{UserID: t.ID, EventCount: t.C, EventTypes: []string{}}
		ids[i] = t.ID
		index[t.ID] = i
	}
	userMatch := append(append(bson.D{}, match...), bson.E{Key: "userId", Value: bson.D{{Key: "$in", Value: ids}}})
	cur, err = s.events.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: userMatch}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: bson.D{{Key: "u", Value: "$userId"}, {Key: "t", Value: "$eventType"}}}}}},
	})
	if err != nil {
		return nil, err
	}
	var types []struct {
		ID struct {
			U string `bson:"u"`
			T string `bson:"t"`
		} `bson:"_id"`
	}
	if err := cur.All(ctx, &types); err != nil {
		return nil, err
	}
	for _, t := range types {
		if i, ok := index[t.ID.U]; ok {
			out[i].EventTypes = append(out[i].EventTypes, t.ID.T)
		}
	}
	for i := range out {
		sort.Strings(out[i].EventTypes)
		last, err := s.lastEvent(ctx, match, out[i].UserID)
		if err != nil {
			return nil, err
		}
		out[i].LastEventAt = last
	}
	return out, nil
}

// lastEvent is the time of user's latest event matching match, to the nanosecond: the
// latest millisecond through the (userId, timestamp) index, then the largest tsNs in it.
func (s *Store) lastEvent(ctx context.Context, match bson.D, user string) (time.Time, error) {
	f := append(append(bson.D{}, match...), bson.E{Key: "userId", Value: user})
	var d struct {
		Timestamp time.Time `bson:"timestamp"`
	}
	err := s.events.FindOne(ctx, f, options.FindOne().SetSort(bson.D{{Key: "userId", Value: 1}, {Key: "timestamp", Value: -1}}).
		SetProjection(bson.D{{Key: "timestamp", Value: 1}})).Decode(&d)
	if err != nil {
		return time.Time{}, err
	}
	f2 := bson.D{{Key: "userId", Value: user}, {Key: "timestamp", Value: d.Timestamp}}
	f2 = append(f2, match[1:]...) // the filters other than the time range
	cur, err := s.events.Find(ctx, f2, options.Find().SetProjection(bson.D{{Key: "tsNs", Value: 1}}))
	if err != nil {
		return time.Time{}, err
	}
	var rows []struct {
		TsNs int64 `bson:"tsNs"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return time.Time{}, err
	}
	best := d.Timestamp.UnixNano()
	for i, r := range rows {
		if i == 0 || r.TsNs > best {
			best = r.TsNs
		}
	}
	return time.Unix(0, best).UTC(), nil
}

// rawAnalytics computes every figure from the raw events of the range that t.MatchUser
// keeps.
func (s *Store) rawAnalytics(ctx context.Context, q store.AnalyticsQuery, t *store.Tally, match bson.D) (store.AnalyticsResult, error) {
	var res store.AnalyticsResult
	f := append(append(bson.D{}, match...), bson.E{Key: "userId", Value: bson.Regex{Pattern: regexp.QuoteMeta(q.UserID), Options: "i"}})
	cur, err := s.events.Find(ctx, f, options.Find().SetProjection(bson.D{
		{Key: "eventType", Value: 1}, {Key: "userId", Value: 1}, {Key: "sessionId", Value: 1}, {Key: "tsNs", Value: 1}}))
	if err != nil {
		return res, err
	}
	defer cur.Close(ctx)
	users, sessions := map[string]*store.TopUser{}, map[string]struct{}{}
	userTypes := map[string]map[string]bool{}
	for cur.Next(ctx) {
		var d struct {
			EventType string `bson:"eventType"`
			UserID    string `bson:"userId"`
			SessionID string `bson:"sessionId"`
			TsNs      int64  `bson:"tsNs"`
		}
		if err := cur.Decode(&d); err != nil {
			return res, err
		}
		if !t.MatchUser(d.UserID) {
			continue
		}
		t.Add(unixMinute(d.TsNs), d.EventType, 1)
		sessions[d.SessionID] = struct{}{}
		u := users[d.UserID]
		if u == nil {
			u = &store.TopUser{UserID: d.UserID}
			users[d.UserID] = u
			userTypes[d.UserID] = map[string]bool{}
		}
		u.EventCount++
		if at := time.Unix(0, d.TsNs).UTC(); at.After(u.LastEventAt) {
			u.LastEventAt = at
		}
		userTypes[d.UserID][d.EventType] = true
	}
	if err := cur.Err(); err != nil {
		return res, err
	}
	res.UniqueUsers, res.UniqueSessions = int64(len(users)), int64(len(sessions))
	top := make([]store.TopUser, 0, len(users))
	for id, u := range users {
		for t := range userTypes[id] {
			u.EventTypes = append(u.EventTypes, t)
		}
		sort.Strings(u.EventTypes)
		top = append(top, *u)
	}
	sort.Slice(top, func(i, j int) bool {
		return top[i].EventCount > top[j].EventCount || top[i].EventCount == top[j].EventCount && top[i].UserID < top[j].UserID
	})
	if len(top) > topUsersLimit {
		top = top[:topUsersLimit]
	}
	res.TopUsers = top
	t.Finish(&res)
	return res, nil
}

var _ store.TypeCounter = (*Store)(nil)

// CountByType implements store.TypeCounter from rollup_minute ($group with $sum): its cost
// grows with the number of minutes and types stored, not with the number of events.
func (s *Store) CountByType(ctx context.Context) (map[string]int64, error) {
	cur, err := s.rollups.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$t"}, {Key: "c", Value: bson.D{{Key: "$sum", Value: "$c"}}}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("mongostore: count by type: %w", err)
	}
	var rows []struct {
		T string `bson:"_id"`
		C int64  `bson:"c"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("mongostore: count by type: %w", err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.T] = r.C
	}
	return out, nil
}
