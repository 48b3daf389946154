package event_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
)

// sameEncoding checks that event.Marshal writes e byte for byte as encoding/json does.
func sameEncoding(t testing.TB, e event.Event) {
	t.Helper()
	got, err := event.Marshal(&e)
	if err != nil {
		t.Fatalf("Marshal(%+v): %v", e, err)
	}
	std, err := json.Marshal(&e)
	if err != nil {
		t.Fatalf("encoding/json Marshal(%+v): %v", e, err)
	}
	if !bytes.Equal(got, std) {
		t.Fatalf("Marshal(%+v) =\n%s\nencoding/json writes\n%s", e, got, std)
	}
}

func TestMarshalAsLibrary(t *testing.T) {
	at := time.Date(2024, 1, 15, 10, 30, 0, 123000000, time.UTC)
	base := event.Event{EventID: "evt_1", EventType: "page_view", UserID: "u", SessionID: "s",
		Timestamp: at, Priority: 1, ReceivedAt: at.Add(time.Second)}
	strs := []string{
		"", "plain", `quote " backslash \ slash /`, "<script>&amp;</script>", "tab\tnl\ncr\rbs\bff\f",
		"\x00\x01\x1f\x7f", "é 😀 中文", "line\u2028para\u2029end", "bad \xff utf8 \xed\xa0\x80 \xe2\x80",
	}
	raws := []string{
		`{}`, `{"a":1}`, " { \"a\" : [ 1 , 2 ] ,\n\t\"b\" : { } } ", `{"s":"a b\t<>&\"\\ \u2028"}`,
		"{\"s\":\"raw \u2028 and \u2029 separators\"}", `{"n":-1.5e+10,"t":true,"f":false,"z":null}`,
		`{"esc":"\\\" <tag>"}`, "{\"k\":\"\xe2\x80\xa8\",\"\xe2\x80\xa9\":1}",
	}
	for _, s := range strs {
		for _, field := range []*string{nil, &base.EventID, &base.EventType, &base.UserID, &base.SessionID, &base.Source} {
			e := base
			switch field {
			case &base.EventID:
				e.EventID = s
			case &base.EventType:
				e.EventType = s
			case &base.UserID:
				e.UserID = s
			case &base.SessionID:
				e.SessionID = s
			case &base.Source:
				e.Source = s
			}
			sameEncoding(t, e)
		}
	}
	for _, r := range raws {
		e := base
		e.Metadata = json.RawMessage(r)
		sameEncoding(t, e)
		e.Metadata, e.Payload = nil, json.RawMessage(r)
		sameEncoding(t, e)
		e.Metadata = json.RawMessage(`{"x":"y"}`)
		sameEncoding(t, e)
	}
	for _, ts := range []time.Time{
		{}, at.In(time.FixedZone("", -(23*3600 + 59*60))), at.In(time.FixedZone("CET", 3600)),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(0, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), time.Now(),
	} {
		e := base
		e.Timestamp, e.ReceivedAt = ts, ts
		sameEncoding(t, e)
	}
	for _, p := range []int{0, 10, -3, 1 << 40} {
		e := base
		e.Priority = p
		sameEncoding(t, e)
	}
}

// A time encoding/json cannot write is left to the library, which fails the same way.
func TestMarshalYearOutOfRange(t *testing.T) {
	e := event.Event{EventID: "x", Timestamp: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	got, gotErr := event.Marshal(&e)
	want, wantErr := json.Marshal(&e)
	if !bytes.Equal(got, want) || (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("Marshal = %s, %v; encoding/json: %s, %v", got, gotErr, want, wantErr)
	}
}

func TestAppendStringAsLibrary(t *testing.T) {
	for _, s := range []string{"", "a", `"\`, "<>&", "\x00\x1f\t\n", "é😀", "\u2028\u2029", "\xff\xed\xa0\x80\xe2\x80"} {
		want, _ := json.Marshal(s)
		if got := event.AppendString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("AppendString(%q) = %s, want x%s", s, got, want)
		}
	}
}
