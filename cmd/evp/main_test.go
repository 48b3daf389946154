package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

func runCmd(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, func(k string) string { return env[k] }, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestBadSettingsExitWithCode2NamingTheSetting(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"port not a number", map[string]string{"PORT": "abc"}, nil, "PORT"},
		{"port flag", nil, []string{"--port", "70000"}, "--port"},
		{"batch size zero", map[string]string{"WORKER_BATCH_SIZE": "0"}, nil, "WORKER_BATCH_SIZE"},
		{"batch timeout", map[string]string{"WORKER_BATCH_TIMEOUT_MS": "soon"}, nil, "WORKER_BATCH_TIMEOUT_MS"},
		{"log level", map[string]string{"LOG_LEVEL": "loud"}, nil, "LOG_LEVEL"},
		{"data dir is a file", map[string]string{"EVP_DATA_DIR": filepath.Join(file, "sub")}, nil, "EVP_DATA_DIR"},
		{"unknown flag", nil, []string{"--nope"}, "nope"},
		{"api role on embedded", map[string]string{"EVP_DATA_DIR": dir}, []string{"api"}, "REDIS_URL"},
		{"worker role on embedded", map[string]string{"EVP_DATA_DIR": dir}, []string{"worker"}, "REDIS_URL"},
		{"unknown command", nil, []string{"frobnicate"}, "unknown command"},
		{"apikey create without name", map[string]string{"EVP_DATA_DIR": dir}, []string{"apikey", "create"}, "--name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, c.env, c.args...)
			if code != 2 || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and a message naming %q", code, stderr, c.want)
			}
		})
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	code, out, _ := runCmd(t, nil, "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"PORT", "3001", "EVP_DATA_DIR", "./data", "WORKER_BATCH_SIZE", "100", "WORKER_BATCH_TIMEOUT_MS", "500",
		"REDIS_URL", "MONGO_URI", "DATABASE_URL", "JWT_SECRET", "API_KEY_PREFIX", "CONSUMER_GROUP", "evp-workers-group", "apikey create"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help does not mention %q", want)
		}
	}
}

// Help prints the commands first and every setting once, for evp and for a subcommand.
func TestHelpPrintsEachSettingOnce(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"api", "--help"}, {"apikey", "create", "--help"}} {
		code, out, _ := runCmd(t, nil, args...)
		if code != 0 {
			t.Fatalf("%q: exit %d", args, code)
		}
		for _, want := range []string{"Usage:", "Every setting is", "  --port ", "  --shutdown-timeout "} {
			if n := strings.Count(out, want); n != 1 {
				t.Errorf("%q prints %q %d times, want once:\n%s", args, want, n, out)
			}
		}
	}
	_, out, _ := runCmd(t, nil, "--help")
	if c, p := strings.Index(out, "Commands:"), strings.Index(out, "  --port "); c < 0 || c > p {
		t.Errorf("--help: the commands (at %d) do not come before the settings (at %d)", c, p)
	}
}

// A port another program holds: exit 2 with a message that says so and how to pick another.
func TestBusyPortSaysHowToPickAnother(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	other := port + 1
	if other > 65535 {
		other = port - 1
	}
	env := map[string]string{"EVP_DATA_DIR": t.TempDir(), "SERVER_HOST": "127.0.0.1", "PORT": strconv.Itoa(port)}
	code, _, stderr := runCmd(t, env)
	for _, want := range []string{"port " + strconv.Itoa(port) + " is in use", "PORT=" + strconv.Itoa(other), "--port " + strconv.Itoa(other)} {
		if code != 2 || !strings.Contains(stderr, want) {
			t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, want)
		}
	}
}

func TestAPIKeyCommands(t *testing.T) {
	env := map[string]string{"EVP_DATA_DIR": t.TempDir()}
	code, key, stderr := runCmd(t, env, "apikey", "create", "--name", "demo")
	key = strings.TrimSpace(key)
	if code != 0 || !strings.HasPrefix(key, "evp_") || len(key) != len("evp_")+43 {
		t.Fatalf("create: exit %d, key %q, stderr %q", code, key, stderr)
	}
	code, list, _ := runCmd(t, env, "apikey", "list")
	if code != 0 || !strings.Contains(list, "demo") || !strings.Contains(list, "active") || strings.Contains(list, key) {
		t.Fatalf("list: exit %d:\n%s", code, list)
	}
	id := strings.Fields(strings.Split(list, "\n")[1])[0]
	if code, _, stderr := runCmd(t, env, "apikey", "revoke", id); code != 0 {
		t.Fatalf("revoke: exit %d %s", code, stderr)
	}
	if _, list, _ = runCmd(t, env, "apikey", "list"); !strings.Contains(list, "revoked") {
		t.Fatalf("after revoke:\n%s", list)
	}
	if code, _, _ := runCmd(t, env, "apikey", "revoke", "key_unknown"); code != 1 {
		t.Fatalf("revoke unknown: exit %d, want 1", code)
	}
	code, _, stderr = runCmd(t, env, "apikey", "create", "--name", "web", "--ingest-only")
	if code != 0 || !strings.Contains(stderr, "ingest-only") {
		t.Fatalf("create --ingest-only: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runCmd(t, env, "apikey", "create", "--name", "shop", "--ingest-only", "--allowed-origins", "https://Shop.example, http://localhost:8080"); code != 0 {
		t.Fatalf("create --allowed-origins: exit %d %s", code, stderr)
	}
	if code, _, stderr := runCmd(t, env, "apikey", "create", "--name", "bad", "--allowed-origins", "shop.example"); code == 0 || !strings.Contains(stderr, "shop.example") {
		t.Errorf("create with a malformed origin: exit %d %q, want a failure naming it", code, stderr)
	}
	_, list, _ = runCmd(t, env, "apikey", "list")
	if !strings.Contains(list, "from https://shop.example,http://localhost:8080") {
		t.Errorf("list does not show the shop key's origins:\n%s", list)
	}
	for _, line := range strings.Split(list, "\n")[1:] {
		if f := strings.Fields(line); len(f) > 1 {
			if ingest := strings.Contains(line, "ingest only"); ingest != (f[1] == "web" || f[1] == "shop") {
				t.Errorf("list: %q says ingest only %v, want it for the keys named web and shop only", line, ingest)
			}
		}
	}
}

func TestHealthcheckCommand(t *testing.T) {
	var live atomic.Bool
	live.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/live" || !live.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"live":true}`))
	}))
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	env := map[string]string{"PORT": port}
	if code, _, stderr := runCmd(t, env, "healthcheck"); code != 0 {
		t.Fatalf("live server: exit %d %s", code, stderr)
	}
	live.Store(false)
	if code, _, stderr := runCmd(t, env, "healthcheck"); code != 1 || !strings.Contains(stderr, "503") {
		t.Fatalf("503 server: exit %d %q, want 1", code, stderr)
	}
	srv.Close()
	if code, _, _ := runCmd(t, env, "healthcheck"); code != 1 {
		t.Fatalf("no server: exit %d, want 1", code)
	}
}

func TestUserCommands(t *testing.T) {
	env := map[string]string{"EVP_DATA_DIR": t.TempDir()}
	if code, out, stderr := runCmd(t, env, "user", "add", "--email", "Ops@Example.com", "--role", "ADMIN"); code != 0 || !strings.Contains(out, "ops@example.com as ADMIN") {
		t.Fatalf("user add: exit %d %q %q", code, out, stderr)
	}
	if code, _, stderr := runCmd(t, env, "user", "add", "--email", "ops@example.com"); code != 1 || !strings.Contains(stderr, "exists") {
		t.Fatalf("second add: exit %d %q, want 1 naming the conflict", code, stderr)
	}
	if code, _, stderr := runCmd(t, env, "user", "add", "--email", "not-an-email"); code != 2 || !strings.Contains(stderr, "--email") {
		t.Fatalf("bad email: exit %d %q, want 2", code, stderr)
	}
	if code, _, stderr := runCmd(t, env, "user", "add", "--email", "a@example.com", "--role", "ROOT"); code != 2 || !strings.Contains(stderr, "--role") {
		t.Fatalf("bad role: exit %d %q, want 2", code, stderr)
	}
	code, list, _ := runCmd(t, env, "user", "list")
	if code != 0 || !strings.Contains(list, "ops@example.com") || !strings.Contains(list, "ADMIN") || !strings.Contains(list, "PENDING VERIFICATION") {
		t.Fatalf("user list: exit %d\n%s", code, list)
	}
}
