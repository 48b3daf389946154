package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

// running is a service that reports the context it runs on and stops when it ends.
type running struct{ ctx chan context.Context }

func newRunning() running { return running{ctx: make(chan context.Context, 1)} }

func (r running) Run(ctx context.Context) error {
	r.ctx <- ctx
	<-ctx.Done()
	return nil
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// The workers and the loops run on until the API has drained, then stop; serve returns once
// all have.
func TestServeStopsWorkersAndLoopsAfterTheAPI(t *testing.T) {
	workers, loop := newRunning(), newRunning()
	var workCtx, loopCtx context.Context
	stillRunning := make(chan bool, 1)
	api := serviceFunc(func(ctx context.Context) error {
		workCtx, loopCtx = <-workers.ctx, <-loop.ctx
		<-ctx.Done() // the stop begins; requests in flight finish here
		stillRunning <- workCtx.Err() == nil && loopCtx.Err() == nil
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, time.Minute, discard, api, workers, []service{loop}) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if !<-stillRunning {
		t.Error("workers or loops stopped before the API had drained")
	}
	if workCtx.Err() == nil || loopCtx.Err() == nil {
		t.Error("serve returned with workers or loops still told to run")
	}
}

// A service that fails stops the others, and serve returns its error.
func TestServeStopsOnAFailure(t *testing.T) {
	boom := errors.New("boom")
	api, workers := newRunning(), newRunning()
	failing := serviceFunc(func(context.Context) error { return boom })
	if err := serve(context.Background(), time.Minute, discard, api, workers, []service{failing}); !errors.Is(err, boom) {
		t.Fatalf("serve: %v, want %v", err, boom)
	}
}

// Workers that do not stop by the deadline are left running; serve returns without them.
func TestServeLeavesWorkersPastTheDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	stuck := serviceFunc(func(context.Context) error { <-release; return nil })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := serve(ctx, time.Millisecond, discard, newRunning(), stuck, nil); err != nil {
		t.Fatalf("serve: %v", err)
	}
}
