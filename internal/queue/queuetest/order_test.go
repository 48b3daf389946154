package queuetest

import (
	"slices"
	"strings"
	"testing"

	"github.com/evp-dev/evp/internal/queue"
)

// The relaxed order of Options.Unordered: msgs that keep each part's order are matched
// entry for entry, and any other order, a duplicate or a stranger is not.
func TestOrder(t *testing.T) {
	es := entries("e", 6)
	byParity := func(id string) int { return int(id[len(id)-1]-'0') % 2 }
	msgs := func(names ...string) []queue.Message {
		out := make([]queue.Message, len(names))
		for i, n := range names {
			out[i] = queue.Message{EventID: n}
		}
		return out
	}
	names := func(es []queue.Entry) string {
		var out []string
		for _, e := range es {
			out = append(out, e.EventID)
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		opts Options
		msgs []queue.Message
		want string
	}{
		{Options{}, msgs("e-1", "e-0"), "e-0 e-1 e-2 e-3 e-4 e-5"},
		// Each part in order: followed exactly, the rest appended in order.
		{Options{Unordered: true, Partition: byParity}, msgs("e-1", "e-0", "e-3", "e-2"), "e-1 e-0 e-3 e-2 e-4 e-5"},
		// e-3 before e-1 in the odd part: e-3 is compared with e-1, a mismatch.
		{Options{Unordered: true, Partition: byParity}, msgs("e-3", "e-0"), "e-1 e-0 e-2 e-3 e-4 e-5"},
		// No parts: any order, but a duplicate or a stranger still mismatches.
		{Options{Unordered: true}, msgs("e-5", "e-3", "e-5", "x"), "e-5 e-3 e-0 e-1 e-2 e-4"},
		{Options{Unordered: true, Partition: byParity}, msgs("e-0", "e-0"), "e-0 e-2 e-1 e-3 e-4 e-5"},
	} {
		h := &harness{t: t, opts: tc.opts}
		in := slices.Clone(es)
		got := h.order(in, tc.msgs)
		if names(got) != tc.want {
			t.Errorf("%+v: order after %v = %s, want %s", tc.opts.Unordered, eventIDs(tc.msgs), names(got), tc.want)
		}
		if names(in) != names(es) {
			t.Error("order changed its argument")
		}
	}
}
