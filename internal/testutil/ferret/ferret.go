// Package ferret runs FerretDB (SQLite handler) inside a test, so that code written for
// MongoDB is tested over MongoDB's real wire protocol with the official driver.
//
// FerretDB implements a subset of MongoDB: no transactions, no sharding commands, and some
// aggregation operators missing (for example the $max accumulator in $group). Production
// code keeps to what MongoDB documents; a test of a piece FerretDB cannot run checks that
// piece against a brute-force expectation in Go instead, and says so.
package ferret

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/FerretDB/FerretDB/ferretdb"

	"github.com/evp-dev/evp/internal/testutil"
)

// Server is one FerretDB started by a test. Stop and Start let a test take the server down
// and bring it back on the same address, with the same data.
type Server struct {
	t    testing.TB
	dir  string
	addr string // host:port, fixed after the first start

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// Start runs a FerretDB on 127.0.0.1 (a free port) with its data in a t.TempDir(), and
// returns once it accepts connections. It is stopped when t ends. With -short the test
// skips.
func Start(t testing.TB) *Server {
	t.Helper()
	testutil.SkipShort(t, "starts FerretDB")
	s := &Server{t: t, dir: t.TempDir(), addr: "127.0.0.1:0"}
	if err := s.start(); err != nil {
		t.Fatalf("ferret: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// URI is the MongoDB connection string of the server.
func (s *Server) URI() string {
	return "mongodb://" + s.addr + "/"
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }

// Stop stops the server and waits until it has closed its listener and connections. Stopping
// a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
	s.cancel, s.done = nil, nil
}

// Restart starts a stopped server again on the same address with the same data.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("ferret: restart: %v", err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		return nil
	}
	level := slog.LevelError
	if os.Getenv("EVP_FERRET_LOG") != "" {
		level = slog.LevelDebug
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: s.addr},
		Handler:  "sqlite",
		// No fsync: a test's data need not survive a power cut, and FerretDB commits every
		// updated document on its own, so syncing would make each test wait on the disk.
		SQLiteURL: "file:" + s.dir + "/?_pragma=synchronous(OFF)",
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx) // ends when ctx does
	}()
	// New has bound the listener, so the server accepts connections from here on (they are
	// served once Run starts): no polling is needed.
	uri := f.MongoDBURI()
	host, err := hostPort(uri)
	if err != nil {
		cancel()
		<-done
		return err
	}
	s.addr, s.cancel, s.done = host, cancel, done
	return nil
}

// hostPort extracts host:port from a mongodb:// URI that FerretDB built.
func hostPort(uri string) (string, error) {
	const scheme = "mongodb://"
	if len(uri) <= len(scheme) || uri[:len(scheme)] != scheme {
		return "", fmt.Errorf("unexpected FerretDB URI %q", uri)
	}
	rest := uri[len(scheme):]
	for i := 0; i < len(rest); i++ {
		if rest[i] == '/' || rest[i] == '?' {
			rest = rest[:i]
			break
		}
	}
	if _, _, err := net.SplitHostPort(rest); err != nil {
		return "", fmt.Errorf("unexpected FerretDB URI %q: %w", uri, err)
	}
	return rest, nil
}
