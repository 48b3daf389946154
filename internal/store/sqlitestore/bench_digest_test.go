package sqlitestore

import (
	"math"
	"strconv"
	"testing"
	"time"
)

// BenchmarkDigestPartial measures the digest's part of filtered queries alone (no database):
// 10 million events of 10,000 users, 10 types (at random) and 50,000 sessions over 24
// hours, the range a minute off the hour as the API's presets are.
func BenchmarkDigestPartial(b *testing.B) {
	const n = 10_000_000
	var d eventDigest
	d.reset(math.MinInt64)
	end := time.Now().Truncate(time.Minute)
	start := end.Add(-24 * time.Hour)
	step := 24 * time.Hour / n
	types := []string{"page_view", "click", "purchase", "signup", "login", "logout", "add_to_cart", "search", "share", "video_play"}
	users, sessions := make([]string, 10000), make([]string, 50000)
	for i := range users {
		users[i] = "user_" + strconv.Itoa(i)
	}
	for i := range sessions {
		sessions[i] = "sess_" + strconv.Itoa(i)
	}
	for i := 0; i < n; i++ {
		d.put(users[(i*7919)%10000], sessions[i%50000], types[(i*2654435761)>>7%10], start.Add(time.Duration(i)*step).UnixNano())
	}
	b.Logf("digest: %.1f MB estimated", float64(d.bytes)/(1<<20))
	startMin, endMin := unixMinute(start.Add(time.Minute).UnixNano()), unixMinute(end.Add(time.Minute).UnixNano())
	for _, f := range []struct{ name, eventType, userID string }{
		{"eventType", "click", ""}, {"userId-111", "", "user_12"}, {"userId-all", "", "user"},
	} {
		b.Run(f.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				d.partial(startMin, endMin, startMin, f.eventType, f.userID)
			}
		})
	}
}
