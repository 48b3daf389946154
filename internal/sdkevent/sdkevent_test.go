package sdkevent

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/evp-dev/evp/internal/event"
)

func TestCorrected(t *testing.T) {
	received := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	// The client's clock is an hour slow: it stamped the event 5 s before it sent it.
	sent := received.Add(-time.Hour)
	if got := corrected(sent.Add(-5*time.Second), sent, received); !got.Equal(received.Add(-5 * time.Second)) {
		t.Errorf("corrected = %v, want 5 s before received", got)
	}
}

func TestDaySession(t *testing.T) {
	at := time.Date(2026, 12, 7, 23, 30, 0, 0, time.FixedZone("", -3600)) // 2026-12-08 in UTC
	if got := DaySession("dev", at); got != "dev/2026-12-08" {
		t.Errorf("DaySession = %q", got)
	}
	long := DaySession(strings.Repeat("é", 200), at)
	if n := utf8.RuneCountInString(long); n != event.MaxIDLen || !strings.HasSuffix(long, "/2026-12-08") || !utf8.ValidString(long) {
		t.Errorf("DaySession of a long id: %d characters, %q", n, long)
	}
}

func TestCheckBody(t *testing.T) {
	var se *event.SyntaxError
	if err := CheckBody([]byte(`{"a":`)); !errors.As(err, &se) {
		t.Errorf("malformed: %v, want a SyntaxError", err)
	}
	var ve *event.ValidationError
	deep := strings.Repeat("[", event.MaxDepth+4) + strings.Repeat("]", event.MaxDepth+4)
	if err := CheckBody([]byte(deep)); !errors.As(err, &ve) || !strings.Contains(ve.Error(), "levels deep") {
		t.Errorf("deep: %v", err)
	}
	if err := CheckBody([]byte("{\"a\":\"\xff\"}")); !errors.As(err, &ve) || !strings.Contains(ve.Error(), "UTF-8") {
		t.Errorf("invalid UTF-8: %v", err)
	}
	if err := CheckBody([]byte(`{"batch":[{"a":1}]}`)); err != nil {
		t.Errorf("valid body: %v", err)
	}
}
