package event

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"
)

var fastNow = time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)

// checkFastAsGeneral checks that decodeOneFast, when it handles body, decodes it exactly as
// decodeOneGeneral does, and that it never changes or aliases body.
func checkFastAsGeneral(t *testing.T, body []byte) (handled bool) {
	t.Helper()
	orig := bytes.Clone(body)
	var got Event
	handled, gotErr := decodeOneFast(body, fastNow, &got)
	if !bytes.Equal(body, orig) {
		t.Fatalf("decodeOneFast modified its input")
	}
	if !handled {
		if !reflect.DeepEqual(got, Event{}) || gotErr != nil {
			t.Fatalf("decodeOneFast(%q) gave up but returned %+v, %v", body, got, gotErr)
		}
		return false
	}
	want, wantErr := decodeOneGeneral(body, fastNow)
	if strings.HasPrefix(got.EventID, IDPrefix) && strings.HasPrefix(want.EventID, IDPrefix) &&
		!bytes.Contains(body, []byte(got.EventID)) && !bytes.Contains(body, []byte(want.EventID)) {
		got.EventID = want.EventID // both generated
	}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotErr, wantErr) {
		t.Fatalf("decodeOneFast(%q) =\n%+v, %v\ndecodeOneGeneral:\n%+v, %v", body, got, gotErr, want, wantErr)
	}
	if got.Metadata != nil {
		for i := range body {
			body[i] ^= 0xff
		}
		aliased := !bytes.Equal(got.Metadata, want.Metadata)
		copy(body, orig)
		if aliased {
			t.Fatalf("decodeOneFast(%q): Metadata aliases the body", body)
		}
	}
	return true
}

func TestDecodeOneFastHandlesCommonBodies(t *testing.T) {
	for _, body := range []string{
		`{"eventType":"page_view","userId":"u1","sessionId":"s1","timestamp":"2024-01-15T10:30:00.123Z","metadata":{"source":"web"},"payload":{"page":"/x","n":[1,2.5e-3,true,null]},"priority":3,"eventId":"e1"}`,
		" {\n \"eventType\" : \"a\" ,\t\"userId\":\"é😀\", \"sessionId\":\"s\", \"timestamp\":\"2024-01-15T10:30:00+02:00\" } \n",
		`{"eventType":"a","userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00Z","eventId":null,"metadata":null,"payload":{},"priority":null}`,
		`{}`,
		`{"eventType":"1bad","userId":"","timestamp":"yesterday","priority":11,"eventId":""}`,
		`{"eventType":"a","userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00Z","metadata":[],"payload":"x","priority":"5"}`,
		`{"eventType":"a","userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00Z","metadata":{"k":"\u00e9\n\"<>&"}}`,
		`{"eventType":"a","userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00Z","metadata":{"\ud83d\ude00":"é😀\uD83D\uDE00"}}`,
		`{"eventType":"a","userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00Z","metadata":{"a":` +
			strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `},"payload":` + strings.Repeat(`{"a":`, MaxDepth) + `1` + strings.Repeat("}", MaxDepth) + `}`,
		`{"eventType":"a","userId":"u","sessionId":"s","timestamp":"2261-12-31T23:59:59.999999999Z"}`,
		`{"eventType":"a","userId":"u","sessionId":"s","timestamp":"2262-01-01T00:00:00Z"}`,
		`{"eventType":"a","userId":"u","sessionId":"s","timestamp":"1677-12-31T23:59:59.999999999Z"}`,
	} {
		if !checkFastAsGeneral(t, []byte(body)) {
			t.Errorf("decodeOneFast gave up on %s", body)
		}
	}
}

func TestDecodeOneFastGivesUp(t *testing.T) {
	for _, body := range []string{
		``, `null`, `[]`, `{`, `{"eventType":"a",}`, `{"eventType":"a"} x`, `{"eventType":"a"}{}`,
		`{"EventType":"a"}`, `{"eventType":"a","eventType":"b"}`, `{"other":1}`, `{"event\u0054ype":"a"}`,
		`{"eventType":"a\nb"}`, `{"eventType":"a\\b"}`, "{\"eventType\":\"a\xff\"}", `{"eventType":5}`,
		`{"userId":nul}`, `{"metadata":{"a":01}}`, `{"metadata":{"a":1.}}`, `{"metadata":{"a":-}}`,
		`{"metadata":{"a":"\x"}}`, `{"metadata":{"a":"\u12"}}`, `{"metadata":{a:1}}`, `{"metadata":[1,]}`,
		`{"priority":+1}`, `{"priority":1e}`, `{"metadata":tru}`,
		`{"metadata":` + strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1) + `}`,
		`{"payload":` + strings.Repeat(`{"a":`, MaxDepth+1) + `1` + strings.Repeat("}", MaxDepth+1) + `}`,
		"{\"metadata\":{\"k\":\"\xff\"}}", "{\"metadata\":{\"\xc3\":1}}", "{\"payload\":[\"\xed\xa0\x80\"]}",
		`{"metadata":{"k":"\ud800"}}`, `{"metadata":{"\udc00":1}}`, `{"payload":{"k":"\ud800\u0041"}}`,
		"{\"priority\":\"\xff\"}", "{\"userId\":\"\xe2\x82\"}", "{\"\xff\":1}",
	} {
		if checkFastAsGeneral(t, []byte(body)) {
			t.Errorf("decodeOneFast handled %q", body)
		}
	}
}

// sameGenerated makes got's generated eventIds those of want where both were generated.
func sameGenerated(body []byte, got, want []Event) {
	for i := range got {
		if i < len(want) && strings.HasPrefix(got[i].EventID, IDPrefix) && strings.HasPrefix(want[i].EventID, IDPrefix) &&
			!bytes.Contains(body, []byte(got[i].EventID)) && !bytes.Contains(body, []byte(want[i].EventID)) {
			got[i].EventID = want[i].EventID
		}
	}
}

// checkBatchFastAsGeneral checks that decodeBatchFast, when it handles body, decodes it
// exactly as decodeBatchGeneral does, without changing body.
func checkBatchFastAsGeneral(t *testing.T, body []byte) (handled bool) {
	t.Helper()
	orig := bytes.Clone(body)
	got, handled, gotErr := decodeBatchFast(body, fastNow)
	if !bytes.Equal(body, orig) {
		t.Fatalf("decodeBatchFast modified its input")
	}
	if !handled {
		if got != nil || gotErr != nil {
			t.Fatalf("decodeBatchFast(%q) gave up but returned %d events, %v", body, len(got), gotErr)
		}
		return false
	}
	want, wantErr := decodeBatchGeneral(body, fastNow)
	sameGenerated(body, got, want)
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotErr, wantErr) {
		t.Fatalf("decodeBatchFast(%q) =\n%+v, %v\ndecodeBatchGeneral:\n%+v, %v", body, got, gotErr, want, wantErr)
	}
	return true
}

func wrapBatch(events ...[]byte) []byte {
	return []byte(`{"events":[` + string(bytes.Join(events, []byte(","))) + `]}`)
}

func TestDecodeBatchFast(t *testing.T) {
	ok := []byte(`{"eventType":"a","userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00Z","metadata":{"k":1},"payload":{"p":[2]},"eventId":"x"}`)
	noID := []byte(`{"eventType":"b","userId":"u2","sessionId":"s2","timestamp":"2024-01-15T10:30:01Z","priority":2}`)
	bad := []byte(`{"eventType":"1a","userId":"","timestamp":"nope","priority":11}`)
	deep := func(levels int) []byte {
		return []byte(`{"eventType":"a","userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00Z","metadata":` +
			strings.Repeat(`{"a":`, levels) + `1` + strings.Repeat("}", levels) + `}`)
	}
	for _, body := range [][]byte{
		wrapBatch(ok), wrapBatch(ok, noID, ok), wrapBatch(noID, bad, ok, bad), wrapBatch(ok, deep(MaxDepth)),
		[]byte(" { \"events\" : [ " + string(ok) + " ,\n" + string(noID) + " ] } "),
	} {
		if !checkBatchFastAsGeneral(t, body) {
			t.Errorf("decodeBatchFast gave up on %s", body)
		}
	}
	many := make([][]byte, MaxBatch+1)
	for i := range many {
		many[i] = ok
	}
	for _, body := range [][]byte{
		[]byte(`{"events":[]}`), []byte(`{"events":null}`), []byte(`{}`), []byte(`[]`), []byte(`{"events":[1]}`),
		[]byte(`{"events":[{}],"x":1}`), []byte(`{"Events":[{}]}`), []byte(`{"events":[{}],}`), []byte(`{"events":[{},]}`),
		[]byte(`{"events":[{}]} x`), []byte(`{"events":[{"EventType":"a"}]}`), wrapBatch(many...),
		wrapBatch(ok, deep(MaxDepth+1)), wrapBatch(ok, []byte("{\"metadata\":{\"k\":\"\xff\"}}")), wrapBatch([]byte(`{"userId":"\udfff"}`)),
	} {
		if checkBatchFastAsGeneral(t, body) {
			t.Errorf("decodeBatchFast handled %.80s", body)
		}
	}
	if !checkBatchFastAsGeneral(t, wrapBatch(many[:MaxBatch]...)) {
		t.Errorf("decodeBatchFast gave up on %d events", MaxBatch)
	}
}

// FuzzDecodeOneFast holds decodeOneFast and decodeBatchFast to the general path's answers
// on every body they handle, and Unmarshal to encoding/json's on every input and on what
// Marshal writes for each event decoded. Its corpus is FuzzDecode's and two of Marshal's
// outputs.
func FuzzDecodeOneFast(f *testing.F) {
	f.Add([]byte(`{"eventType":"a","userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00Z","metadata":{"a":[1,{"b":"\u2028"}]},"priority":1.0}`))
	f.Add([]byte(`{"eventId":"evt_1","eventType":"a","userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00.5Z","metadata":{"a":[1,{"b":"\u2028"}]},"payload":{},"priority":10,"receivedAt":"2024-01-15T10:30:01Z"}`))
	f.Add([]byte(`{"eventId":"evt_1","eventType":"a","userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00Z","priority":0,"receivedAt":"2024-01-15T10:30:01Z"}`))
	files, _ := filepath.Glob("testdata/fuzz/FuzzDecode/*")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		// The corpus format: a header line, then []byte("...") with a Go-quoted string.
		lines := strings.SplitN(string(data), "\n", 2)
		if len(lines) < 2 {
			continue
		}
		v := strings.TrimSpace(lines[1])
		if s, ok := strings.CutPrefix(v, "[]byte("); ok {
			if u, err := strconv.Unquote(strings.TrimSuffix(s, ")")); err == nil {
				f.Add([]byte(u))
			}
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkUnmarshalAsStd(t, body)
		if ev, err := DecodeOne(body, fastNow); err == nil {
			data, err := Marshal(&ev)
			if err != nil {
				t.Fatalf("Marshal(%+v): %v", ev, err)
			}
			checkUnmarshalAsStd(t, data)
		}
		checkFastAsGeneral(t, body)
		checkBatchFastAsGeneral(t, body)
		checkBatchFastAsGeneral(t, wrapBatch(body))
		checkBatchFastAsGeneral(t, wrapBatch(body, []byte(`{"eventType":"a","userId":"u","sessionId":"s","timestamp":"2024-01-15T10:30:00Z"}`), body))
	})
}

// The dedup window keeps eventIds for minutes: an eventId must not share its memory with
// the event's other strings.
func TestDecodeOneFastEventIDOwnsItsMemory(t *testing.T) {
	body := []byte(`{"eventType":"page_view","userId":"user_1","sessionId":"sess_1","timestamp":"2024-01-15T10:30:00Z","eventId":"id-1"}`)
	var ev Event
	if handled, err := decodeOneFast(body, fastNow, &ev); !handled || err != nil {
		t.Fatalf("decodeOneFast: %v, %v", handled, err)
	}
	lo, hi := ^uintptr(0), uintptr(0)
	for _, s := range []string{ev.EventType, ev.UserID, ev.SessionID} {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		lo, hi = min(lo, p), max(hi, p+uintptr(len(s)))
	}
	// The other fields' string ends with the timestamp's text; its 41 bytes take a 48-byte
	// allocation, so nothing else can start at or before its end.
	hi += uintptr(len("2024-01-15T10:30:00Z"))
	if p := uintptr(unsafe.Pointer(unsafe.StringData(ev.EventID))); p >= lo && p <= hi {
		t.Fatalf("eventId at %#x lies with the other fields (%#x-%#x)", p, lo, hi)
	}
}
