package httpapi

import (
	"net/http/httptest"
	"testing"
)

// writeEventAnswer writes what writeData writes for the same answer.
func TestWriteEventAnswerAsWriteData(t *testing.T) {
	for _, a := range []eventAnswer{
		{EventID: "evt_01HZ", Accepted: true, Message: "Event accepted for processing"},
		{EventID: "id-1", Duplicate: true, Message: "Event already processed (duplicate)"},
		{EventID: `<"\é😀` + "\u2028\x01", Accepted: true, Message: "m"},
	} {
		want, got := httptest.NewRecorder(), httptest.NewRecorder()
		writeData(want, 202, a)
		writeEventAnswer(got, 202, a)
		if got.Code != want.Code || got.Body.String() != want.Body.String() {
			t.Errorf("writeEventAnswer(%+v) = %d %q, writeData = %d %q", a, got.Code, got.Body, want.Code, want.Body)
		}
		for k := range want.Header() {
			if got.Header().Get(k) != want.Header().Get(k) {
				t.Errorf("%s: %q, writeData %q", k, got.Header().Get(k), want.Header().Get(k))
			}
		}
		if len(got.Header()) != len(want.Header()) {
			t.Errorf("headers %v, writeData %v", got.Header(), want.Header())
		}
	}
}
