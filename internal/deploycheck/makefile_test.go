package deploycheck

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/testutil"
)

// makeWeb runs `make web-if-stale` (what `make run` does before building evp) in dir, which
// holds a copy of the repository's Makefile, with PATH, and returns what the stand-in npm
// was asked, one call a line, and make's output.
func makeWeb(t *testing.T, dir, pathEnv string) (calls, out string) {
	t.Helper()
	log := filepath.Join(dir, "npm.log")
	if err := os.Remove(log); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "-s", "web-if-stale")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + pathEnv, "NPM_LOG=" + log, "HOME=" + dir}
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make web-if-stale: %v\n%s", err, b)
	}
	l, _ := os.ReadFile(log)
	return strings.TrimSpace(string(l)), string(b)
}

// make run builds the dashboard when its build is missing or older than a file under web/
// (sources, index.html, package and config files), and only then; without npm it goes on
// without building. A stand-in npm records what make asks of it and "builds" index.html.
func TestMakeRunRebuildsAStaleDashboard(t *testing.T) {
	testutil.SkipShort(t, "runs make")
	makePath, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make is not installed")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Makefile"), []byte(readFile(t, "Makefile")), 0o644); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	at := func(rel string, d time.Duration) {
		t.Helper()
		if err := os.Chtimes(filepath.Join(dir, rel), t0.Add(d), t0.Add(d)); err != nil {
			t.Fatal(err)
		}
	}
	for _, rel := range []string{"web/package.json", "web/package-lock.json", "web/index.html", "web/vite.config.ts",
		"web/src/main.tsx", "web/node_modules/.package-lock.json", "web/node_modules/react/index.js", "web/test-results/x.png"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, rel), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		at(rel, 0)
	}
	at("web/node_modules/.package-lock.json", time.Minute) // installed after the package files
	tools := filepath.Join(dir, "tools")
	if err := os.Mkdir(tools, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"find", "mkdir", "make"} {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Skipf("%s is not installed", name)
		}
		if name == "make" {
			p = makePath
		}
		if err := os.Symlink(p, filepath.Join(tools, name)); err != nil {
			t.Fatal(err)
		}
	}
	npm := "#!/bin/sh\necho \"$*\" >>\"$NPM_LOG\"\n" +
		"if [ \"$1 $2\" = \"run build\" ]; then mkdir -p ../internal/dashboard/dist/app && echo built >../internal/dashboard/dist/app/index.html; fi\n"
	withNPM := filepath.Join(dir, "withnpm")
	if err := os.Mkdir(withNPM, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(withNPM, "npm"), []byte(npm), 0o755); err != nil {
		t.Fatal(err)
	}
	withNPM += ":" + tools
	const build = "internal/dashboard/dist/app/index.html"

	steps := []struct {
		name  string
		touch string // a file made newer than the build (empty: none)
		want  string // npm calls
	}{
		{"no build yet", "", "run build"},
		{"build newer than web/", "", ""},
		{"a source changed", "web/src/main.tsx", "run build"},
		{"index.html changed", "web/index.html", "run build"},
		{"a config file changed", "web/vite.config.ts", "run build"},
		{"package.json changed", "web/package.json", "ci --no-audit --no-fund\nrun build"},
		{"a dependency changed", "web/node_modules/react/index.js", ""},
		{"test output changed", "web/test-results/x.png", ""},
	}
	for i, s := range steps {
		if s.touch != "" {
			at(s.touch, time.Duration(2*i)*time.Hour)
		}
		calls, out := makeWeb(t, dir, withNPM)
		if calls != s.want {
			t.Fatalf("%s: npm was asked %q, want %q\n%s", s.name, calls, s.want, out)
		}
		if calls != "" {
			// What the build and npm ci wrote is newer than what they read.
			at(build, time.Duration(2*i+1)*time.Hour)
			at("web/node_modules/.package-lock.json", time.Duration(2*i+1)*time.Hour)
		}
	}

	// Without npm: make goes on (evp is built without a new dashboard) and says why.
	at("web/src/main.tsx", 30*time.Hour)
	if calls, out := makeWeb(t, dir, tools); calls != "" || !strings.Contains(out, "npm not found") {
		t.Errorf("stale build without npm: npm asked %q, output %q", calls, out)
	}
	if err := os.Remove(filepath.Join(dir, build)); err != nil {
		t.Fatal(err)
	}
	if calls, out := makeWeb(t, dir, tools); calls != "" || !strings.Contains(out, "without the dashboard") {
		t.Errorf("no build without npm: npm asked %q, output %q", calls, out)
	}
}
