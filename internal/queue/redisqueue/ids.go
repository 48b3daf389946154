package redisqueue

import (
	"fmt"
	"strconv"
	"strings"
)

// ref is one entry of one stream.
type ref struct {
	p   *part
	sid string
}

// parseID splits a stream id "ms-seq".
func parseID(s string) (ms, seq uint64, ok bool) {
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return ms, seq, err1 == nil && err2 == nil
}

// EncodeID maps an id of a single stream to a non-negative int64, or reports that it does
// not fit.
func EncodeID(s string) (int64, bool) { return encodePartID(s, 0, 0) }

// DecodeID is the inverse of EncodeID for non-negative ids.
func DecodeID(id int64) string {
	s, _ := decodePartID(id, 0)
	return s
}

func (q *Queue) encode(r ref) int64 {
	if id, ok := encodePartID(r.sid, r.p.idx, q.pbits); ok {
		return id
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if id, ok := q.aliasOf[r]; ok {
		return id
	}
	id := q.nextAlias
	q.nextAlias--
	q.aliases[id] = r
	q.aliasOf[r] = id
	return id
}

func (q *Queue) decodeAll(ids []int64) ([]ref, error) {
	out := make([]ref, len(ids))
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, id := range ids {
		if id >= 0 {
			sid, p := decodePartID(id, q.pbits)
			if p >= len(q.parts) {
				return nil, fmt.Errorf("redisqueue: message id %d names stream %d of %d", id, p, len(q.parts))
			}
			out[i] = ref{q.parts[p], sid}
			continue
		}
		r, ok := q.aliases[id]
		if !ok {
			return nil, fmt.Errorf("redisqueue: unknown message id %d", id)
		}
		out[i] = r
	}
	return out, nil
}
