package event_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/evp-dev/evp/internal/event"
)

// benchEvent returns a realistic event body of about 300 bytes with small metadata and
// payload objects; i varies the ids.
func benchEvent(i int) []byte {
	return fmt.Appendf(nil, `{"eventType":"checkout.completed","userId":"user_%08d","sessionId":"sess_7f3a9c2e%08d",`+
		`"timestamp":"2024-01-15T10:30:00.123Z","priority":3,`+
		`"metadata":{"source":"web","appVersion":"2.14.1","ip":"203.0.113.7"},`+
		`"payload":{"orderId":"ord_%06d","amount":129.99,"currency":"EUR","items":3}}`, i, i, i)
}

func TestBenchEventIsRealistic(t *testing.T) {
	body := benchEvent(42)
	if n := len(body); n < 270 || n > 330 {
		t.Errorf("bench event is %d bytes, want about 300", n)
	}
	ev := decodeOK(t, body)
	if ev.UserID != "user_00000042" || ev.Priority != 3 || string(ev.Payload) != `{"orderId":"ord_000042","amount":129.99,"currency":"EUR","items":3}` {
		t.Errorf("bench event decoded as %+v", ev)
	}
}

func BenchmarkDecodeOne(b *testing.B) {
	body := benchEvent(1)
	if _, err := event.DecodeOne(body, testNow); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := event.DecodeOne(body, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeBatch100(b *testing.B) {
	evs := make([][]byte, 100)
	for i := range evs {
		evs[i] = benchEvent(i)
	}
	body := batch(evs...)
	if got, err := event.DecodeBatch(body, testNow); err != nil || len(got) != 100 {
		b.Fatalf("DecodeBatch: %d events, %v", len(got), err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := event.DecodeBatch(body, testNow); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/event")
}

func BenchmarkMarshal(b *testing.B) {
	ev, err := event.DecodeOne(benchEvent(1), testNow)
	if err != nil {
		b.Fatal(err)
	}
	data, err := event.Marshal(&ev)
	if err != nil || !bytes.Contains(data, []byte(`"userId":"user_00000001"`)) {
		b.Fatalf("Marshal = %s, %v", data, err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := event.Marshal(&ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnmarshal decodes what Marshal wrote, as a worker does for every entry it reads
// back from the buffer.
func BenchmarkUnmarshal(b *testing.B) {
	ev, err := event.DecodeOne(benchEvent(1), testNow)
	if err != nil {
		b.Fatal(err)
	}
	data, err := event.Marshal(&ev)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var got event.Event
		if err := event.Unmarshal(data, &got); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeBatch100Escaped decodes a batch the hand scanner leaves to the general
// path: every userId holds an escape.
func BenchmarkDecodeBatch100Escaped(b *testing.B) {
	evs := make([][]byte, 100)
	for i := range evs {
		evs[i] = bytes.Replace(benchEvent(i), []byte(`"user_`), []byte(`"user\u005f`), 1)
	}
	body := batch(evs...)
	if got, err := event.DecodeBatch(body, testNow); err != nil || len(got) != 100 || got[0].UserID != "user_00000000" {
		b.Fatalf("DecodeBatch: %d events, %v", len(got), err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := event.DecodeBatch(body, testNow); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/event")
}
