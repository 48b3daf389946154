package sqlitestore

import (
	"bufio"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Rebuilding the event digest from the events table takes long on a large store, and
// filtered analytics take the slow path meanwhile. Close therefore writes the digest to
// digestSnapshotFile, and the next Open reads it back (then deletes it) and only feeds it
// the events stored since. A start after a crash finds no snapshot and reads the events
// table.

const digestSnapshotFile = "digest.snapshot"

// digestSnapshotVersion changes with the layout or meaning of digestSnapshot or of the
// digest's events.
const digestSnapshotVersion = 2

type digestSnapshot struct {
	Version      int
	Seq, From    int64
	Cutoff       int64 // the retention cut-off applied, noTime when none
	Users, Types []string
	Hours        []snapshotHour
}

// snapshotHour is one digestHour, column by column; Ev holds every group's events in turn,
// Count how many each has.
type snapshotHour struct {
	Hour      int64
	Last      []int64
	LastTypes []uint64
	User      []int32
	Count     []int32
	Ev        []uint32
}

// saveDigest writes the digest to dir when it is active (complete from its first hour on).
func (s *Store) saveDigest() error {
	d := &s.digest
	d.mu.Lock()
	if !d.active {
		d.mu.Unlock()
		return nil
	}
	snap := digestSnapshot{Version: digestSnapshotVersion, Seq: d.seq, From: d.from, Cutoff: d.cutoff,
		Users: d.users.names, Types: d.types}
	for hour, h := range d.hours {
		if hour < d.from {
			continue // being filled by a warm-up Close interrupted: not whole
		}
		d.bytes -= h.bytesEstimate()
		h.seal()
		d.bytes += h.bytesEstimate()
		sh := snapshotHour{Hour: hour, Last: make([]int64, len(h.sealed)), LastTypes: make([]uint64, len(h.sealed)),
			User: make([]int32, len(h.sealed)), Count: make([]int32, len(h.sealed)), Ev: h.sev}
		start := uint32(0)
		for i, g := range h.sealed {
			sh.Last[i], sh.LastTypes[i], sh.User[i], sh.Count[i] = g.last, g.lastTypes, g.user, int32(g.end-start)
			start = g.end
		}
		snap.Hours = append(snap.Hours, sh)
	}
	d.mu.Unlock()

	path := filepath.Join(s.dir, digestSnapshotFile)
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	err = errors.Join(gob.NewEncoder(w).Encode(&snap), w.Flush(), f.Close())
	if err == nil {
		err = os.Rename(tmp, path) // a half-written snapshot is never read
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("sqlitestore: save event digest: %w", err)
	}
	return nil
}

// loadDigest fills the digest from the snapshot Close left in dir, if any, and deletes it.
// It reports whether the digest is now active. A snapshot that does not fit the store (its
// events are not all there any more) is ignored.
func (s *Store) loadDigest(ctx context.Context) (bool, error) {
	path := filepath.Join(s.dir, digestSnapshotFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer func() { _ = os.Remove(path) }() // used once: after a crash the digest is read from the events
	defer f.Close()
	var snap digestSnapshot
	if err := gob.NewDecoder(bufio.NewReaderSize(f, 1<<20)).Decode(&snap); err != nil {
		return false, fmt.Errorf("sqlitestore: event digest snapshot %s: %w", path, err)
	}
	if snap.Version != digestSnapshotVersion {
		return false, nil
	}
	if !snap.consistent() {
		return false, fmt.Errorf("sqlitestore: event digest snapshot %s is inconsistent", path)
	}
	top, cutoff, err := storedBounds(ctx, s.rdb)
	if err != nil {
		return false, err
	}
	if snap.Seq > top {
		return false, nil // events it holds were deleted since: not this store's digest
	}
	d := &s.digest
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reset(snap.From)
	for _, name := range snap.Users {
		d.users.id(name)
		d.bytes += 2*len(name) + 64
	}
	for i, t := range snap.Types {
		d.typeID[t] = uint16(i)
	}
	d.types = snap.Types
	for _, sh := range snap.Hours {
		h := &digestHour{sealed: make([]sealedGroup, len(sh.User)), sev: sh.Ev}
		end := uint32(0)
		for i, user := range sh.User {
			end += uint32(sh.Count[i])
			h.sealed[i] = sealedGroup{last: sh.Last[i], lastTypes: sh.LastTypes[i], user: user, end: end}
		}
		d.hours[sh.Hour] = h
		d.bytes += h.bytesEstimate()
	}
	d.seq, d.cutoff = snap.Seq, snap.Cutoff
	d.applyCutoff(cutoff)
	d.evict()
	d.active = true
	return true, nil
}

// consistent reports whether every hour's columns line up and its events and user ids are
// within bounds, so that loading cannot index out of range.
func (snap *digestSnapshot) consistent() bool {
	for _, sh := range snap.Hours {
		n := len(sh.User)
		if len(sh.Last) != n || len(sh.LastTypes) != n || len(sh.Count) != n {
			return false
		}
		events := 0
		for i, u := range sh.User {
			if u < 0 || int(u) >= len(snap.Users) || sh.Count[i] < 0 {
				return false
			}
			events += int(sh.Count[i])
		}
		if events != len(sh.Ev) {
			return false
		}
	}
	return true
}
