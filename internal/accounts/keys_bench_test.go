package accounts

import (
	"context"
	"testing"
	"time"
)

// BenchmarkKeyAuthHit authenticates a cached key from GOMAXPROCS goroutines, as every
// ingestion request does.
func BenchmarkKeyAuthHit(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	plain, _, err := CreateAPIKey(ctx, s, NewKey{Name: "bench", Prefix: "evp_"})
	if err != nil {
		b.Fatal(err)
	}
	a := NewKeyAuth(s, time.Minute)
	if _, err := a.Authenticate(ctx, plain); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.Authenticate(ctx, plain); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
