package logqueue

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// A segment is one file of the log. Its name is the id of the first entry it may hold;
// entries get consecutive ids across segments, so a segment holds the ids from its name up
// to the next segment's name (or the next id to be given out, for the head).
type segment struct {
	firstID int64
	path    string
	file    *os.File // read with ReadAt; the writer appends to the head through its own handle
	size    int64    // bytes of whole records

	count    int64    // entries written to it
	acked    []uint64 // bit i: entry firstID+i acknowledged
	numAcked int64    // acknowledged entries, counted once each
}

const segmentSuffix = ".log"

func segmentName(firstID int64) string {
	return fmt.Sprintf("%020d%s", firstID, segmentSuffix)
}

// listSegments returns the segment files in dir in id order.
func listSegments(dir string) ([]*segment, error) {
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []*segment
	for _, e := range names {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		id, err := strconv.ParseInt(strings.TrimSuffix(name, segmentSuffix), 10, 64)
		if err != nil || id < 1 {
			return nil, fmt.Errorf("logqueue: %s: not a segment name", filepath.Join(dir, name))
		}
		segs = append(segs, &segment{firstID: id, path: filepath.Join(dir, name)})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].firstID < segs[j].firstID })
	return segs, nil
}

// ack marks id acknowledged and reports whether it was not already.
func (s *segment) ack(id int64) bool {
	i := id - s.firstID
	if i < 0 || i >= s.count {
		return false
	}
	w, bit := i/64, uint64(1)<<(i%64)
	for int64(len(s.acked)) <= w {
		s.acked = append(s.acked, 0)
	}
	if s.acked[w]&bit != 0 {
		return false
	}
	s.acked[w] |= bit
	s.numAcked++
	return true
}

func (s *segment) isAcked(id int64) bool {
	i := id - s.firstID
	w := i / 64
	return w < int64(len(s.acked)) && s.acked[w]&(uint64(1)<<(i%64)) != 0
}

// unacked is how many of its entries wait for an acknowledgement.
func (s *segment) unacked() int64 { return s.count - s.numAcked }
