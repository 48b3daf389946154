package httpapi

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
)

// Any query string gives a query within its bounds or a validation error naming a
// parameter, never a panic; and a cursor made for a query reads back as its position for
// that query only.
func FuzzEventQuery(f *testing.F) {
	for _, s := range []string{
		"timeRange=1h&eventType=click", "from=2026-11-25T11:51:00.5Z&to=2026-11-25T12:00:00Z",
		"prop=metadata.page:/home&prop=payload.a.b:12.5", "prop=properties.x:", "prop=metadata:x",
		"prop=metadata.$x:1", "prop=metadata..a:1", "userId=%00&sessionId=%ff", "from=1677-12-31T23:59:59Z",
	} {
		f.Add(s, int64(1764071460000000000), "evt_1")
	}
	f.Add("userId=u", int64(-1), strings.Repeat("事", event.MaxIDLen)) // the longest eventId, a MongoDB store's key
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string, ts int64, key string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, e := eventQuery(v, now)
		if e != nil {
			if d, _ := e.Details.([]event.FieldError); e.Status != 400 || len(d) != 1 || d[0].Path == "" {
				t.Fatalf("%q: error %+v does not name a parameter", raw, e)
			}
			return
		}
		if len(q.Props) > maxPropConds || len(q.EventType) > maxParamLen || len(q.UserID) > maxParamLen {
			t.Fatalf("%q: accepted %+v", raw, q)
		}
		for _, p := range q.Props {
			if (p.Field != "metadata" && p.Field != "payload") || len(p.Path) == 0 || len(p.Path) > maxPropDepth {
				t.Fatalf("%q: accepted condition %+v", raw, p)
			}
			for _, k := range p.Path {
				if k == "" || strings.ContainsAny(k, "\"\\$\x00.") {
					t.Fatalf("%q: accepted key %q", raw, k)
				}
			}
		}
		if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
			t.Fatalf("%q: accepted an empty range", raw)
		}
		pos := &store.Position{TS: ts, Key: key}
		c := encodeCursor(pos, &q)
		if len(key) > 4*event.MaxIDLen {
			return // a key longer than any store's
		}
		got, e := decodeCursor(c, &q)
		if e != nil || *got != *pos {
			t.Fatalf("cursor of %+v read back as %+v, %v", pos, got, e)
		}
		other := q
		other.UserID += "x"
		if _, e := decodeCursor(c, &other); e == nil {
			t.Fatalf("a cursor of %q is taken for another user", q.UserID)
		}
		if _, e := decodeCursor(raw, &q); e == nil && len(raw) < 16 {
			t.Fatalf("%q taken for a cursor", raw)
		}
	})
}
