package httpapi

import (
	"context"
	"sync"
)

// inflight tracks event ids this process is buffering right now. Without it two concurrent
// requests with the same eventId would both pass the dedup check during the buffer's
// fsync and both be answered 202. With it the second waits for the first: if the first was
// buffered, the second is a duplicate; if it failed, the second buffers the event itself.
// So an id is never reported seen before its event is durable.
//
// A request's dedup check can be stale by the time it claims an id: another request may
// have buffered the id, recorded it as seen and released it in between. finished counts
// releases, so a request that sees it moved since its check checks its claims again.
type inflight struct {
	mu sync.Mutex
	// ids maps each claimed id to the channel done closes; nil until another request
	// waits for it, so that an uncontended claim allocates nothing.
	ids      map[string]chan struct{}
	finished uint64 // done calls so far
}

func newInflight() *inflight { return &inflight{ids: map[string]chan struct{}{}} }

// admit decides, for each id, whether this request buffers it (mine[i]) or it is a
// duplicate (not mine): already seen, repeated earlier in ids, or buffered by a concurrent
// request in the meantime. The caller must call done(ids, mine) after buffering.
func (s *Server) admit(ctx context.Context, ids []string) (mine []bool, err error) {
	flags := make([]bool, 2*len(ids)) // one allocation for mine and seen
	mine, seen := flags[:len(ids):len(ids)], flags[len(ids):]
	checked := s.flight.generation() // before the check, so that a release after it shows
	if err := s.Ingestion.Dedup.Seen(ctx, ids, seen); err != nil {
		return nil, err
	}
	var undecidedBuf, claimedBuf [8]int // enough for a single event or a small batch
	undecided := undecidedBuf[:0]
	for i := range ids {
		if !seen[i] {
			undecided = append(undecided, i)
		}
	}
	var batch map[string]struct{}
	if len(ids) > 1 {
		batch = make(map[string]struct{}, len(ids))
	}
	for len(undecided) > 0 {
		var waits []chan struct{}
		var again []int
		claimed := claimedBuf[:0]
		s.flight.mu.Lock()
		for _, i := range undecided {
			id := ids[i]
			if batch != nil {
				if _, dup := batch[id]; dup {
					continue
				}
			}
			if ch, busy := s.flight.ids[id]; busy {
				if ch == nil {
					ch = make(chan struct{})
					s.flight.ids[id] = ch
				}
				waits = append(waits, ch)
				again = append(again, i)
				continue
			}
			s.flight.ids[id] = nil
			mine[i] = true
			claimed = append(claimed, i)
			if batch != nil {
				batch[id] = struct{}{}
			}
		}
		stale := s.flight.finished != checked
		s.flight.mu.Unlock()
		if stale && len(claimed) > 0 {
			if err := s.recheck(ctx, ids, mine, claimed); err != nil {
				s.done(ids, mine)
				return nil, err
			}
		}
		if len(again) == 0 {
			return mine, nil
		}
		for _, ch := range waits {
			select {
			case <-ch:
			case <-ctx.Done():
				s.done(ids, mine)
				return nil, ctx.Err()
			}
		}
		// The other request finished: its id is now seen, or it failed and is free.
		againIDs := make([]string, len(again))
		for k, i := range again {
			againIDs[k] = ids[i]
		}
		againSeen := make([]bool, len(again))
		checked = s.flight.generation()
		if err := s.Ingestion.Dedup.Seen(ctx, againIDs, againSeen); err != nil {
			s.done(ids, mine)
			return nil, err
		}
		undecided = undecided[:0]
		for k, i := range again {
			if !againSeen[k] {
				undecided = append(undecided, i)
			}
		}
	}
	return mine, nil
}

func (f *inflight) generation() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.finished
}

// recheck asks the dedup set again about the ids just claimed (mine[i] for i in claimed)
// and gives up those seen meanwhile: they are duplicates.
func (s *Server) recheck(ctx context.Context, ids []string, mine []bool, claimed []int) error {
	claimedIDs := make([]string, len(claimed))
	for k, i := range claimed {
		claimedIDs[k] = ids[i]
	}
	seen := make([]bool, len(claimed))
	if err := s.Ingestion.Dedup.Seen(ctx, claimedIDs, seen); err != nil {
		return err
	}
	release := make([]bool, len(ids))
	for k, i := range claimed {
		if seen[k] {
			release[i], mine[i] = true, false
		}
	}
	s.done(ids, release)
	return nil
}

// done releases the ids this request admitted, waking requests that wait on them. Call it
// after the ids were recorded as seen (or after buffering failed).
func (s *Server) done(ids []string, mine []bool) {
	s.flight.mu.Lock()
	s.flight.finished++
	for i, m := range mine {
		if m {
			if ch, ok := s.flight.ids[ids[i]]; ok {
				if ch != nil {
					close(ch)
				}
				delete(s.flight.ids, ids[i])
			}
		}
	}
	s.flight.mu.Unlock()
}
