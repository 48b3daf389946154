package testutil

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a redis-server process of one test, for what the shared Redis must never
// see: killing it, restarting it, or changing its configuration.
type RedisServer struct {
	Addr string // 127.0.0.1:port

	t      testing.TB
	dir    string
	args   []string
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartRedisServer starts redis-server on a free loopback port with files in t.TempDir(),
// nothing persisted (--save "" --appendonly no) unless args say otherwise, and args added
// last. It returns once the server answers PING and kills it when t ends. Without
// redis-server on PATH the test skips with the reason, or fails under
// EVP_REQUIRE_SERVICES=1; with -short it skips.
func StartRedisServer(t testing.TB, args ...string) *RedisServer {
	t.Helper()
	SkipShort(t, "starts redis-server")
	if _, err := exec.LookPath("redis-server"); err != nil {
		reason := "redis-server not found on PATH: install Debian's redis-server"
		if os.Getenv("EVP_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%s (EVP_REQUIRE_SERVICES=1)", reason)
		}
		fmt.Fprintln(os.Stderr, "test with its own redis-server skipped:", reason)
		t.Skip(reason)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &RedisServer{Addr: "127.0.0.1:" + strconv.Itoa(port), t: t, dir: t.TempDir(), args: args}
	s.start()
	t.Cleanup(s.Kill)
	return s
}

// URL is the server's redis:// URL.
func (s *RedisServer) URL() string { return "redis://" + s.Addr + "/0" }

// Client connects to the server, closed when the test ends.
func (s *RedisServer) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// Kill ends the server with SIGKILL and waits for it to exit. It does nothing when the
// server is not running.
func (s *RedisServer) Kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Restart starts the server again on the same port, with the same arguments and
// directory: empty, unless it was persisting.
func (s *RedisServer) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
}

func (s *RedisServer) start() {
	s.t.Helper()
	port := s.Addr[len("127.0.0.1:"):]
	log := filepath.Join(s.dir, "redis.log")
	args := append([]string{"--port", port, "--bind", "127.0.0.1", "--dir", s.dir, "--logfile", log,
		"--save", "", "--appendonly", "no"}, s.args...)
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server on port %s: %v", port, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(log)
			s.cmd = nil
			s.t.Fatalf("redis-server on port %s exited: %s", port, out)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on port %s not answering: %v", port, err)
		}
		time.Sleep(10 * time.Millisecond) // readiness poll: the process is starting
	}
}
