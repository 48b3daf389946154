package testutil

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterBusOffset is where Redis Cluster puts a node's bus port: its port + 10000.
const clusterBusOffset = 10000

// RedisCluster starts a Redis Cluster of n masters and no replicas for the test: n
// redis-server processes with --cluster-enabled yes on free loopback ports, files in
// t.TempDir() and nothing persisted, joined by redis-cli --cluster create. It returns the
// nodes' addresses once every node reports cluster_state:ok and all 16384 slots, and kills
// the servers when t ends. Without redis-server or redis-cli on PATH the test skips with
// the reason, or fails under EVP_REQUIRE_SERVICES=1; with -short it skips.
func RedisCluster(t testing.TB, n int) []string {
	t.Helper()
	SkipShort(t, "starts a Redis Cluster")
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			reason := fmt.Sprintf("%s not found on PATH: install Debian's redis-server (it brings redis-tools)", bin)
			if os.Getenv("EVP_REQUIRE_SERVICES") == "1" {
				t.Fatalf("%s (EVP_REQUIRE_SERVICES=1)", reason)
			}
			fmt.Fprintln(os.Stderr, "Redis Cluster test skipped:", reason)
			t.Skip(reason)
		}
	}
	dir := t.TempDir()
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = startClusterNode(t, dir)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	waitClusterOK(t, addrs)
	return addrs
}

// RedisClusterClient returns a cluster client on addrs, closed when t ends.
func RedisClusterClient(t testing.TB, addrs []string) *redis.ClusterClient {
	t.Helper()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { c.Close() })
	return c
}

// startClusterNode starts one cluster-enabled redis-server and waits until it answers.
func startClusterNode(t testing.TB, dir string) string {
	t.Helper()
	port := freeClusterPort(t)
	p := strconv.Itoa(port)
	cmd := exec.Command("redis-server",
		"--port", p, "--bind", "127.0.0.1",
		"--cluster-enabled", "yes",
		"--cluster-config-file", filepath.Join(dir, "nodes-"+p+".conf"),
		"--cluster-node-timeout", "5000",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis-"+p+".log"),
		"--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server on port %s: %v", p, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	addr := "127.0.0.1:" + p
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return addr
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "redis-"+p+".log"))
			t.Fatalf("redis-server on port %s exited: %s", p, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on port %s not answering: %v", p, err)
		}
		time.Sleep(10 * time.Millisecond) // readiness poll: the process is starting
	}
}

// freeClusterPort finds a loopback port that is free together with its bus port.
func freeClusterPort(t testing.TB) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if port+clusterBusOffset > 65535 {
			l.Close()
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+clusterBusOffset))
		l.Close()
		if err != nil {
			continue
		}
		bus.Close()
		return port
	}
	t.Fatal("no free port pair for a cluster node")
	return 0
}

// waitClusterOK waits until every node sees a healthy cluster with all slots and nodes.
func waitClusterOK(t testing.TB, addrs []string) {
	t.Helper()
	want := [][]byte{[]byte("cluster_state:ok"), []byte("cluster_slots_ok:16384"),
		[]byte("cluster_known_nodes:" + strconv.Itoa(len(addrs)))}
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range addrs {
		c := redis.NewClient(&redis.Options{Addr: addr})
		for {
			info, err := c.ClusterInfo(context.Background()).Result()
			if err == nil && containsAll([]byte(info), want) {
				break
			}
			if time.Now().After(deadline) {
				c.Close()
				t.Fatalf("cluster not ready at %s: %v %s", addr, err, strings.TrimSpace(info))
			}
			time.Sleep(20 * time.Millisecond) // readiness poll: the nodes gossip the new layout
		}
		c.Close()
	}
}

func containsAll(b []byte, subs [][]byte) bool {
	for _, s := range subs {
		if !bytes.Contains(b, s) {
			return false
		}
	}
	return true
}
