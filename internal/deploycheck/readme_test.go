package deploycheck

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/evp-dev/evp/internal/config"
)

const readmePath = "README.md"

var (
	relLink = regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	envName = regexp.MustCompile("`([A-Z][A-Z0-9_]+)`")
)

// checkReadme checks README.md against evp: its configuration table names every setting evp
// reads, its set-up commands are the two the Makefile and CI run, and every relative link
// leads to a file of the repository (exists reports whether one does).
func checkReadme(text string, exists func(rel string) bool) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	_, section, found := strings.Cut(text, "\n## Configuration\n")
	if !found {
		add(`no "## Configuration" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	table := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		for _, m := range envName.FindAllStringSubmatch(first, -1) {
			table[m[1]] = true
		}
	}
	for _, name := range config.EnvNames() {
		if !table[name] {
			add("%s (read by evp) is not in the configuration table", name)
		}
	}
	for _, cmd := range []string{"make run", "make test"} {
		if !strings.Contains(text, "\n    "+cmd+"\n") {
			add("the set-up command %q is not on a line of its own", cmd)
		}
	}
	problems = append(problems, checkLinks(text, "", exists)...)
	return problems
}

// checkLinks reports the relative links of a Markdown text in dir that lead to no file.
func checkLinks(text, dir string, exists func(rel string) bool) []string {
	var problems []string
	for _, m := range relLink.FindAllStringSubmatch(text, -1) {
		target := m[1]
		if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
			continue
		}
		if !exists(dir + target) {
			problems = append(problems, fmt.Sprintf("link to %s: no such file", target))
		}
	}
	return problems
}

func TestReadme(t *testing.T) {
	report(t, readmePath, checkReadme(readFile(t, readmePath), exists))
}

func TestReadmeCheckerFails(t *testing.T) {
	base := readFile(t, readmePath)
	cases := []struct{ name, old, new, want string }{
		{"setting left out", "| `EVP_CLAIM_IDLE` |", "| `EVP_CLAIM_IDLE_X` |", "EVP_CLAIM_IDLE (read by evp) is not in the configuration table"},
		{"set-up command", "\n    make test\n", "\n    make check\n", `"make test"`},
		{"broken link", "](docs/operations.md)", "](docs/operating.md)", "link to docs/operating.md"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, checkReadme(mustReplace(t, base, tc.old, tc.new), exists), tc.want)
		})
	}
}

// The documents under docs/ link only to files that exist.
func TestDocsLinks(t *testing.T) {
	entries, err := os.ReadDir(path("docs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if rel := "docs/" + e.Name(); strings.HasSuffix(rel, ".md") {
			report(t, rel, checkLinks(readFile(t, rel), "docs/", exists))
		}
	}
}
