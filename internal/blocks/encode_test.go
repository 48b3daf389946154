package blocks

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/store/storetest"
)

func TestEncodeRoundTrip(t *testing.T) {
	evs := storetest.Corpus(4000, 11)
	d := NewDicts()
	for _, blk := range seal(t, d, evs) {
		b, err := blk.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("hour %d: %v", blk.Hour, err)
		}
		if !reflect.DeepEqual(got.types, blk.types) || !reflect.DeepEqual(got.cells, blk.cells) || !reflect.DeepEqual(got.users, blk.users) ||
			!reflect.DeepEqual(got.entries, blk.entries) || !reflect.DeepEqual(got.session, blk.session) ||
			!reflect.DeepEqual(got.sessionHashes, blk.sessionHashes) || got.Hour != blk.Hour || got.Version != blk.Version || got.Events != blk.Events ||
			got.sessions.Estimate() != blk.sessions.Estimate() {
			t.Errorf("hour %d: the decoded block differs from the encoded one", blk.Hour)
		}
		t.Logf("hour %d: %d events in %d bytes", blk.Hour, blk.Events, len(b))

		// Any damaged byte is caught by the checksum.
		for i := range b {
			bad := append([]byte(nil), b...)
			bad[i] ^= 0x10
			if _, err := Decode(bad); !errors.Is(err, errCorrupt) && err == nil {
				t.Fatalf("hour %d: byte %d damaged, Decode did not notice", blk.Hour, i)
			}
		}
	}
}

// withCRC returns body with the checksum Encode ends a block with.
func withCRC(body []byte) []byte {
	return binary.LittleEndian.AppendUint32(append([]byte(nil), body...), crc32.Checksum(body, crcTable))
}

// FuzzDecode feeds Decode blocks damaged behind their checksum (the fuzzer's bytes get a
// valid one): Decode refuses them or returns a block that Query reads without failing.
func FuzzDecode(f *testing.F) {
	evs := storetest.Corpus(300, 2)
	d := NewDicts()
	for _, blk := range seal(f, d, evs) {
		b, err := blk.Encode(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:len(b)-4])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		blk, err := Decode(withCRC(body))
		if err != nil {
			return
		}
		start := time.Unix(blk.Hour*3600, 0)
		for _, q := range []store.AnalyticsQuery{
			{Start: start, End: start.Add(time.Hour), Bucket: time.Minute},
			{Start: start.Add(time.Minute), End: start.Add(time.Hour), Bucket: time.Minute, UserID: "user"},
			{Start: start, End: start.Add(time.Hour), Bucket: time.Hour, EventType: "click"},
		} {
			_, _ = Query([]*Block{blk}, d, q)
		}
	})
}
