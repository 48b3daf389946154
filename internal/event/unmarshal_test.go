package event

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// checkUnmarshalAsStd checks that Unmarshal decodes data exactly as encoding/json does, into
// a zero event and into one already filled, and that what it decodes does not alias data.
// It reports whether the hand-written path handled data.
func checkUnmarshalAsStd(t *testing.T, data []byte) (handled bool) {
	t.Helper()
	orig := bytes.Clone(data)
	filled := Event{EventID: "old", Metadata: json.RawMessage(`{"old":1}`), Payload: json.RawMessage(`{"old":2}`), Priority: 7}
	for _, start := range []Event{{}, filled} {
		got, want := start, start
		gotErr := Unmarshal(data, &got)
		wantErr := json.Unmarshal(data, &want)
		if !bytes.Equal(data, orig) {
			t.Fatalf("Unmarshal modified its input")
		}
		if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() || !reflect.DeepEqual(got, want) {
			t.Fatalf("Unmarshal(%q) into %+v =\n%+v, %v\nencoding/json:\n%+v, %v", data, start, got, gotErr, want, wantErr)
		}
		if gotErr == nil && len(data) > 0 {
			for i := range data {
				data[i] ^= 0xff
			}
			changed := !reflect.DeepEqual(got, want)
			copy(data, orig)
			if changed {
				t.Fatalf("Unmarshal(%q): the event aliases its input", data)
			}
		}
	}
	var e Event
	return unmarshalFast(data, &e)
}

func TestUnmarshalAsLibrary(t *testing.T) {
	at := time.Date(2024, 1, 15, 10, 30, 0, 123000000, time.UTC)
	base := Event{EventID: "evt_1", EventType: "page_view", UserID: "é😀", SessionID: "s", Timestamp: at,
		Metadata: json.RawMessage(`{"a":[1,{"b":"\u2028 \"x\""}],"c":null}`), Payload: json.RawMessage(`{}`),
		Priority: 3, ReceivedAt: at.Add(time.Second)}
	marshal := func(e Event) string {
		data, err := Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	withoutRaw := base
	withoutRaw.Metadata, withoutRaw.Payload = nil, nil
	onlyPayload := base
	onlyPayload.Metadata = nil
	negative := base
	negative.Priority = -12
	sourced, unknownSource := base, base
	sourced.Source, unknownSource.Source = SourceSegment, "sdk-x"
	common := []string{marshal(base), marshal(withoutRaw), marshal(onlyPayload), marshal(negative), marshal(sourced), marshal(unknownSource)}
	for _, data := range common {
		if !checkUnmarshalAsStd(t, []byte(data)) {
			t.Errorf("the hand-written path gave up on Marshal's output %s", data)
		}
	}

	full := common[0]
	for _, data := range []string{
		// What Marshal writes, but not by hand.
		marshal(Event{EventID: "<&>", Timestamp: at, ReceivedAt: at}),
		marshal(Event{EventID: "x", Timestamp: at.In(time.FixedZone("", 3600)), ReceivedAt: at}),
		// Another shape, or not Marshal's output at all.
		strings.Replace(full, `"priority":3`, `"priority":3.0`, 1),
		strings.Replace(full, `"}`, `","source":1}`, 1),
		strings.Replace(full, `"}`, `","source":"a\"b"}`, 1),
		strings.Replace(full, `"}`, `","source":"api","x":1}`, 1),
		strings.Replace(full, `"priority":3`, `"priority":1e3`, 1),
		strings.Replace(full, `"priority":3`, `"priority":99999999999999999999`, 1),
		strings.Replace(full, `"priority":3`, `"priority":03`, 1),
		strings.Replace(full, `"priority":3`, `"priority":"3"`, 1),
		strings.Replace(full, `"metadata":{`, `"metadata":[{`, 1),
		strings.Replace(full, `"payload":{}`, `"payload":null`, 1),
		strings.Replace(full, `"payload":{}`, `"payload":5`, 1),
		strings.Replace(full, `"userId":"`, `"userId":"\u0041`, 1),
		strings.Replace(full, `"userId":"`, "\"userId\":\"\xff", 1),
		strings.Replace(full, `"userId":"`, `"userid":"`, 1),
		strings.Replace(full, `"userId":"`, `"userId": "`, 1),
		strings.Replace(full, `"userId":"`, `"userId":null,"x":"`, 1),
		strings.Replace(full, `"timestamp":"2024-01-15T10:30:00.123Z"`, `"timestamp":"2024-01-15T10:30:00.123+02:00"`, 1),
		strings.Replace(full, `"timestamp":"2024-01-15T10:30:00.123Z"`, `"timestamp":"2024-01-15T1:30:00Z"`, 1),
		strings.Replace(full, `"timestamp":"2024-01-15T10:30:00.123Z"`, `"timestamp":"yesterday"`, 1),
		strings.Replace(full, `"receivedAt"`, `"receivedAt":1,"receivedAt"`, 1),
		full + " ",
		full + "{}",
		full[:len(full)-1],
		strings.Replace(full, `{"a":[1,`, `{"d":`+strings.Repeat("[", MaxDepth)+strings.Repeat("]", MaxDepth)+`,"a":[1,`, 1),
		`{}`, `null`, `[]`, ``, `{"eventId":"x"}`,
	} {
		checkUnmarshalAsStd(t, []byte(data))
	}
}
