package deploycheck

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/evp-dev/evp/internal/config"
)

// The files under test, relative to the repository root.
const (
	dockerfilePath = "Dockerfile"
	composePath    = "deploy/docker-compose.yml"
	envExamplePath = "deploy/.env.example"
	k8sDir         = "deploy/k8s"
	mongoInitPath  = "deploy/mongo/init-cluster.js"
	nginxConfPath  = "deploy/nginx/nginx.conf"
	railwayAPIPath = "railway.json"
	railwayWorker  = "deploy/railway/worker.json"
	ciPath         = ".github/workflows/ci.yml"
	ciRunPath      = ".ci/run"
	mainGoPath     = "cmd/evp/main.go"
)

// deployPrefix marks variables that only docker-compose.yml reads (image tag, host port);
// they may appear in ${...} and in .env.example, never in a container's environment.
const deployPrefix = "DEPLOY_"

// thirdParty lists, by image repository, the variables that image reads. An entry ending in
// "_" is a prefix.
var thirdParty = map[string][]string{
	"postgres": {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "POSTGRES_INITDB_", "POSTGRES_HOST_AUTH_METHOD", "PGDATA"},
	"mongo":    {"MONGO_INITDB_"},
	"redis":    {"REDISCLI_AUTH"},
	"nginx":    {"NGINX_"},
	"golang":   {"CGO_ENABLED", "CGO_CFLAGS", "CGO_LDFLAGS", "GOOS", "GOARCH", "GOAMD64", "GOFLAGS", "GOTOOLCHAIN", "GOPROXY", "GOCACHE", "GOMODCACHE"},
	"node":     {"NODE_OPTIONS", "NPM_CONFIG_", "CI"},
}

// imageRepo is the last path element of an image reference without tag or digest:
// "gcr.io/distroless/static-debian12:nonroot" -> "static-debian12".
func imageRepo(image string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, "/"); i >= 0 {
		image = image[i+1:]
	}
	image, _, _ = strings.Cut(image, ":")
	return image
}

// thirdPartyVar reports whether image reads the variable name.
func thirdPartyVar(image, name string) bool {
	for _, p := range thirdParty[imageRepo(image)] {
		if name == p || (strings.HasSuffix(p, "_") && strings.HasPrefix(name, p)) {
			return true
		}
	}
	return false
}

// anyThirdPartyVar reports whether any of images reads name.
func anyThirdPartyVar(images []string, name string) bool {
	for _, img := range images {
		if thirdPartyVar(img, name) {
			return true
		}
	}
	return false
}

var evpNames = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	for _, n := range config.EnvNames() {
		m[n] = true
	}
	return m
})

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// root is the repository root: the nearest directory above the test with a go.mod.
var root = sync.OnceValue(func() string {
	dir, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			panic("no go.mod above " + dir)
		}
		dir = parent
	}
})

func path(rel string) string { return filepath.Join(root(), filepath.FromSlash(rel)) }

func readFile(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(path(rel))
	if err != nil {
		t.Fatalf("read %s: %v", rel, err)
	}
	return string(b)
}

func exists(rel string) bool {
	_, err := os.Stat(path(rel))
	return err == nil
}

// report fails t with every problem, one per line.
func report(t testing.TB, what string, problems []string) {
	t.Helper()
	for _, p := range problems {
		t.Errorf("%s: %s", what, p)
	}
}

// loadConfig runs evp's own configuration loading over env, as evp would at start.
func loadConfig(env map[string]string) (*config.Config, error) {
	cfg, _, err := config.Load("evp", nil, func(k string) string { return env[k] }, io.Discard, nil)
	return cfg, err
}

// --- .env.example ---------------------------------------------------------------------------

// envLine is one NAME=value line of an env file; Commented lines ("# NAME=value") show a default.
type envLine struct {
	Line      int
	Name      string
	Value     string
	Commented bool
}

var envAssignRE = regexp.MustCompile(`^(#\s*)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$`)

func parseEnvFile(text string) []envLine {
	var lines []envLine
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		m := envAssignRE.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		lines = append(lines, envLine{Line: n, Name: m[2], Value: unquote(m[3]), Commented: m[1] != ""})
	}
	return lines
}

func unquote(v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// envFileValues are the values an env file sets (its uncommented lines).
func envFileValues(lines []envLine) map[string]string {
	m := map[string]string{}
	for _, l := range lines {
		if !l.Commented {
			m[l.Name] = l.Value
		}
	}
	return m
}

// checkEnvExample checks deploy/.env.example: every name is evp's, a compose-only DEPLOY_
// name, or a variable of an image the compose file runs; every name evp reads is there once; a
// commented line shows evp's default (or the compose file's, for DEPLOY_ names); the values it
// sets are ones evp accepts.
func checkEnvExample(lines []envLine, composeImages []string, composeDefaults map[string]string) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	seen := map[string]int{}
	defaults, err := loadConfig(nil)
	if err != nil {
		return []string{fmt.Sprintf("evp rejects its own defaults: %v", err)}
	}
	for _, l := range lines {
		if prev, dup := seen[l.Name]; dup {
			add("line %d: %s is already on line %d", l.Line, l.Name, prev)
		}
		seen[l.Name] = l.Line
		switch {
		case evpNames()[l.Name]:
			if !l.Commented {
				continue
			}
			cfg, err := loadConfig(map[string]string{l.Name: l.Value})
			if err != nil {
				add("line %d: evp rejects the documented default: %v", l.Line, err)
			} else if !reflect.DeepEqual(cfg, defaults) {
				add("line %d: %s=%s is shown as the default (commented out) but is not evp's default", l.Line, l.Name, l.Value)
			}
		case strings.HasPrefix(l.Name, deployPrefix):
			if def, ok := composeDefaults[l.Name]; l.Commented && ok && def != l.Value {
				add("line %d: %s=%s is shown as the default but docker-compose.yml defaults it to %q", l.Line, l.Name, l.Value, def)
			} else if !ok {
				add("line %d: %s is not used by docker-compose.yml", l.Line, l.Name)
			}
		case anyThirdPartyVar(composeImages, l.Name):
		default:
			add("line %d: %s is not a setting evp reads, nor a compose-only %s variable, nor one of an image the stack runs", l.Line, l.Name, deployPrefix)
		}
	}
	for _, name := range config.EnvNames() {
		if _, ok := seen[name]; !ok {
			add("%s (read by evp) is not documented", name)
		}
	}
	if _, err := loadConfig(envFileValues(lines)); err != nil {
		add("evp rejects the values it sets: %v", err)
	}
	return problems
}

func TestEnvExample(t *testing.T) {
	c := loadCompose(t)
	lines := parseEnvFile(readFile(t, envExamplePath))
	if len(lines) < len(config.EnvNames()) {
		t.Fatalf("%s: %d settings found, evp reads %d", envExamplePath, len(lines), len(config.EnvNames()))
	}
	report(t, envExamplePath, checkEnvExample(lines, c.images(), interpolationDefaults(readFile(t, composePath))))
}

// --- interpolation: ${NAME}, ${NAME:-default}, ${NAME:?message}, $NAME --------------------------

var interpRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

type interp struct {
	Name, Op, Arg string
}

func interpolations(text string) []interp {
	text = strings.ReplaceAll(text, "$$", "")
	var out []interp
	for _, m := range interpRE.FindAllStringSubmatch(text, -1) {
		if m[1] != "" {
			out = append(out, interp{Name: m[1], Op: m[2], Arg: m[3]})
		} else {
			out = append(out, interp{Name: m[4]})
		}
	}
	return out
}

// interpolationDefaults maps each name given a ${NAME:-default} to its default.
func interpolationDefaults(text string) map[string]string {
	m := map[string]string{}
	for _, in := range interpolations(text) {
		if in.Op == ":-" || in.Op == "-" {
			m[in.Name] = in.Arg
		} else if _, ok := m[in.Name]; !ok {
			m[in.Name] = ""
		}
	}
	return m
}

// placeholderSecret stands for a value the user must supply (${NAME:?...} left empty).
var placeholderSecret = strings.Repeat("s", 40)

// interpolate resolves s as docker compose would with the variables vars (deploy/.env).
func interpolate(s string, vars map[string]string) string {
	s = strings.ReplaceAll(s, "$$", "\x00")
	s = interpRE.ReplaceAllStringFunc(s, func(ref string) string {
		m := interpRE.FindStringSubmatch(ref)
		name, op, arg := m[1], m[2], m[3]
		if name == "" {
			name = m[4]
		}
		v, set := vars[name]
		switch op {
		case ":-":
			if v == "" {
				return arg
			}
		case "-":
			if !set {
				return arg
			}
		case ":?", "?":
			if v == "" {
				return placeholderSecret
			}
		}
		return v
	})
	return strings.ReplaceAll(s, "\x00", "$")
}

// --- evp's commands -------------------------------------------------------------------------

// evpCommands are the command names cmd/evp's run function dispatches on.
func evpCommands(t testing.TB) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path(mainGoPath), nil, 0)
	if err != nil {
		t.Fatalf("parse %s: %v", mainGoPath, err)
	}
	cmds := map[string]bool{}
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "run" {
			continue
		}
		ast.Inspect(fn, func(n ast.Node) bool {
			cc, ok := n.(*ast.CaseClause)
			if !ok {
				return true
			}
			for _, e := range cc.List {
				if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil {
						cmds[s] = true
					}
				}
			}
			return true
		})
	}
	if len(cmds) == 0 {
		t.Fatalf("%s: no command names found in func run", mainGoPath)
	}
	return cmds
}

// commandUse is one place where a deployment file runs evp with a command.
type commandUse struct {
	Where   string
	Command string
}

func checkCommands(uses []commandUse, known map[string]bool) []string {
	var problems []string
	for _, u := range uses {
		if !known[u.Command] {
			problems = append(problems, fmt.Sprintf("%s runs `evp %s`, which is not a command of cmd/evp", u.Where, u.Command))
		}
	}
	return problems
}

func TestEvpCommandsExist(t *testing.T) {
	c := loadCompose(t)
	objs := loadK8s(t)
	df := parseDockerfile(readFile(t, dockerfilePath))
	var uses []commandUse
	uses = append(uses, c.commandUses()...)
	uses = append(uses, k8sCommandUses(objs)...)
	uses = append(uses, dockerfileCommandUses(df)...)
	for _, rel := range []string{railwayAPIPath, railwayWorker} {
		uses = append(uses, loadRailway(t, rel).commandUses(rel)...)
	}
	want := map[string]bool{"api": false, "worker": false, "migrate": false, "healthcheck": false}
	for _, u := range uses {
		if _, ok := want[u.Command]; ok {
			want[u.Command] = true
		}
	}
	for cmd, used := range want {
		if !used {
			t.Errorf("no deployment file runs `evp %s`", cmd)
		}
	}
	report(t, "commands", checkCommands(uses, evpCommands(t)))
}

// --- every name in every deployment file ----------------------------------------------------

// TestEveryEnvNameIsKnown collects the environment variable names of every deployment file and
// checks each against evp's settings and the third-party images that read it.
func TestEveryEnvNameIsKnown(t *testing.T) {
	c := loadCompose(t)
	report(t, composePath, checkComposeEnv(c, readFile(t, composePath)))
	report(t, k8sDir, checkK8sEnv(loadK8s(t)))
	report(t, dockerfilePath, checkDockerfileEnv(parseDockerfile(readFile(t, dockerfilePath))))
	for _, rel := range []string{railwayAPIPath, railwayWorker} {
		report(t, rel, checkRailwayEnv(loadRailway(t, rel)))
	}
	// The mongo-init script runs in the mongo image with the environment compose gives it.
	script := readFile(t, mongoInitPath)
	var names []string
	for _, m := range regexp.MustCompile(`process\.env\.([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(script, -1) {
		names = append(names, m[1])
	}
	report(t, mongoInitPath, checkNames(names, []string{"mongo"}, "the mongo-init script"))
}

// checkNames checks that each name is evp's or read by one of images.
func checkNames(names []string, images []string, where string) []string {
	var problems []string
	for _, n := range names {
		if !envNameRE.MatchString(n) {
			problems = append(problems, fmt.Sprintf("%s: %q is not an environment variable name", where, n))
		} else if !evpNames()[n] && !anyThirdPartyVar(images, n) {
			problems = append(problems, fmt.Sprintf("%s: %s is not a setting evp reads (config.EnvNames)%s", where, n, imagesNote(images)))
		}
	}
	return problems
}

func imagesNote(images []string) string {
	if len(images) == 0 {
		return ""
	}
	repos := map[string]bool{}
	for _, img := range images {
		repos[imageRepo(img)] = true
	}
	var list []string
	for r := range repos {
		list = append(list, r)
	}
	sort.Strings(list)
	return " nor one the " + strings.Join(list, ", ") + " image reads"
}

// checkTextEnv checks the ${NAME} and $NAME references in a file (Railway's ${{NAME}} too).
func checkTextEnv(text string, images []string) []string {
	var names []string
	for _, in := range interpolations(strings.ReplaceAll(strings.ReplaceAll(text, "${{", "${"), "}}", "}")) {
		names = append(names, in.Name)
	}
	return checkNames(names, images, "reference")
}
