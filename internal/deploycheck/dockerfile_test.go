package deploycheck

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	Line int    // where it starts
	Cmd  string // upper case: FROM, RUN, ...
	Args string // the rest, flags included
}

// parseDockerfile splits a Dockerfile into instructions the way the Dockerfile frontend does
// for the forms this repository uses: comments and blank lines dropped, a trailing backslash
// continues the instruction (comment lines inside it are dropped too).
func parseDockerfile(text string) []instruction {
	var out []instruction
	var cur *instruction
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		cont := strings.HasSuffix(trimmed, "\\")
		trimmed = strings.TrimSpace(strings.TrimSuffix(trimmed, "\\"))
		if cur == nil {
			cmd, args, _ := strings.Cut(trimmed, " ")
			cur = &instruction{Line: i + 1, Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args)}
		} else {
			cur.Args += " " + trimmed
		}
		if !cont {
			out = append(out, *cur)
			cur = nil
		}
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out
}

var dockerInstructions = strings.Fields(`ADD ARG CMD COPY ENTRYPOINT ENV EXPOSE FROM HEALTHCHECK
	LABEL MAINTAINER ONBUILD RUN SHELL STOPSIGNAL USER VOLUME WORKDIR`)

// stage is one FROM and the instructions under it.
type stage struct {
	Name  string // the AS name, lower case ("" without one)
	Image string // as written, ${ARG}s resolved with their defaults
	Ins   []instruction
}

var argRefRE = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

// flags splits leading --name=value flags off an instruction's arguments.
func flags(args string) (map[string]string, string) {
	f := map[string]string{}
	for strings.HasPrefix(args, "--") {
		word, rest, _ := strings.Cut(args, " ")
		k, v, _ := strings.Cut(strings.TrimPrefix(word, "--"), "=")
		if _, seen := f[k]; seen {
			f[k] += "," + v
		} else {
			f[k] = v
		}
		args = strings.TrimSpace(rest)
	}
	return f, args
}

// execForm parses a JSON array argument (["a", "b"]); ok is false for the shell form.
func execForm(args string) ([]string, bool) {
	var v []string
	if !strings.HasPrefix(strings.TrimSpace(args), "[") {
		return nil, false
	}
	if err := json.Unmarshal([]byte(args), &v); err != nil {
		return nil, false
	}
	return v, true
}

// envPairs parses ENV's NAME=value pairs (and the old "ENV NAME value" form).
func envPairs(args string) map[string]string {
	m := map[string]string{}
	if !strings.Contains(strings.Fields(args)[0], "=") {
		name, value, _ := strings.Cut(args, " ")
		m[name] = strings.TrimSpace(value)
		return m
	}
	for _, f := range regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)`).FindAllStringSubmatch(args, -1) {
		m[f[1]] = strings.Trim(f[2], `"`)
	}
	return m
}

// stages groups the instructions by FROM; globalArgs are the ARGs before the first FROM.
func stages(ins []instruction) (globalArgs map[string]string, out []stage) {
	globalArgs = map[string]string{}
	for _, in := range ins {
		if in.Cmd == "FROM" {
			_, rest := flags(in.Args)
			f := strings.Fields(rest)
			s := stage{}
			if len(f) > 0 {
				s.Image = argRefRE.ReplaceAllStringFunc(f[0], func(ref string) string {
					return globalArgs[argRefRE.FindStringSubmatch(ref)[1]]
				})
			}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.Name = strings.ToLower(f[2])
			}
			out = append(out, s)
			continue
		}
		if len(out) == 0 {
			if in.Cmd == "ARG" {
				name, def, _ := strings.Cut(in.Args, "=")
				globalArgs[name] = strings.Trim(def, `"`)
			}
			continue
		}
		out[len(out)-1].Ins = append(out[len(out)-1].Ins, in)
	}
	return globalArgs, out
}

// checkDockerfile checks the image's Dockerfile: known instructions, stages referenced by
// COPY --from and RUN --mount=from exist, FROM ARGs are declared, the build stage links a static
// cgo binary, and the runtime stage is minimal, non-root, exposes 3001 with a health check,
// keeps data in /data and runs evp.
func checkDockerfile(ins []instruction, goModVersion string) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if len(ins) == 0 {
		return []string{"no instructions"}
	}
	for _, in := range ins {
		if !slices.Contains(dockerInstructions, in.Cmd) {
			add("line %d: unknown instruction %s", in.Line, in.Cmd)
		}
		switch in.Cmd {
		case "CMD", "ENTRYPOINT", "SHELL":
			if _, ok := execForm(in.Args); !ok {
				add("line %d: %s must be in exec form (a JSON array)", in.Line, in.Cmd)
			}
		}
	}
	for _, in := range ins {
		if in.Cmd != "ARG" {
			if in.Cmd != "FROM" {
				add("line %d: the first instruction must be FROM (or ARG), not %s", in.Line, in.Cmd)
			}
			break
		}
	}

	globalArgs, st := stages(ins)
	for _, in := range ins {
		if in.Cmd != "FROM" {
			continue
		}
		for _, m := range argRefRE.FindAllStringSubmatch(in.Args, -1) {
			if _, ok := globalArgs[m[1]]; !ok {
				add("line %d: FROM uses ${%s}, which no ARG before the first FROM declares", in.Line, m[1])
			}
		}
	}
	names := map[string]int{}
	for i, s := range st {
		if s.Name == "" {
			continue
		}
		if _, dup := names[s.Name]; dup {
			add("stage name %q is used twice", s.Name)
		}
		names[s.Name] = i
	}
	// references to other stages must point at an earlier one
	for i, s := range st {
		for _, in := range s.Ins {
			f, _ := flags(in.Args)
			var refs []string
			if in.Cmd == "COPY" || in.Cmd == "ADD" {
				if from, ok := f["from"]; ok {
					refs = append(refs, from)
				}
			}
			if in.Cmd == "RUN" {
				for _, mount := range strings.Split(f["mount"], ",") {
					if from, ok := strings.CutPrefix(mount, "from="); ok {
						refs = append(refs, from)
					}
				}
			}
			for _, ref := range refs {
				j, ok := names[strings.ToLower(ref)]
				if !ok {
					if n := atoi(ref); n >= 0 {
						j, ok = n, true
					}
				}
				switch {
				case !ok && (strings.Contains(ref, "/") || strings.Contains(ref, ":")):
					// an image, not a stage
				case !ok:
					add("line %d: %s refers to stage %q, which no FROM ... AS defines", in.Line, in.Cmd, ref)
				case j >= i:
					add("line %d: %s refers to stage %q, which is not an earlier stage", in.Line, in.Cmd, ref)
				}
			}
		}
	}
	if len(st) < 2 {
		add("not multi-stage: build and runtime must be separate stages")
		return problems
	}

	// The Go build stage: static cgo binary.
	var build *stage
	for i := range st {
		if imageRepo(st[i].Image) == "golang" {
			build = &st[i]
		}
	}
	if build == nil {
		add("no golang build stage")
	} else {
		_, tag, _ := strings.Cut(build.Image, ":")
		tag, _, _ = strings.Cut(tag, "-")
		if tag == "" || !strings.HasPrefix(goModVersion+".", tag+".") {
			add("build stage image %s does not match go.mod's go %s", build.Image, goModVersion)
		}
		var text strings.Builder
		for _, in := range build.Ins {
			text.WriteString(in.Cmd + " " + in.Args + "\n")
		}
		for _, want := range []string{"CGO_ENABLED=1", "-linkmode external", `-extldflags '-static'`,
			"sqlite_omit_load_extension", "netgo", "osusergo", "./cmd/evp", "main.version="} {
			if !strings.Contains(text.String(), want) {
				add("build stage: %q is missing (static cgo build of ./cmd/evp)", want)
			}
		}
	}

	// The runtime stage.
	final := st[len(st)-1]
	if r := imageRepo(final.Image); r == "golang" || r == "node" || !(strings.Contains(final.Image, "distroless") || final.Image == "scratch") {
		add("runtime stage FROM %s: use a minimal base (distroless or scratch)", final.Image)
	}
	last := map[string]instruction{}
	env := map[string]string{}
	exposed := []string{}
	volumes := []string{}
	for _, in := range final.Ins {
		last[in.Cmd] = in
		switch in.Cmd {
		case "ENV":
			for k, v := range envPairs(in.Args) {
				env[k] = v
			}
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in.Args)...)
		case "VOLUME":
			if v, ok := execForm(in.Args); ok {
				volumes = append(volumes, v...)
			} else {
				volumes = append(volumes, strings.Fields(in.Args)...)
			}
		}
	}
	if u, ok := last["USER"]; !ok {
		add("runtime stage: no USER (it would run as root)")
	} else if user, _, _ := strings.Cut(u.Args, ":"); user == "root" || user == "0" {
		add("line %d: runtime stage runs as root", u.Line)
	}
	if !slices.Contains(exposed, "3001") && !slices.Contains(exposed, "3001/tcp") {
		add("runtime stage: EXPOSE 3001 is missing")
	}
	if !slices.Contains(volumes, "/data") {
		add("runtime stage: VOLUME /data is missing")
	}
	if env["EVP_DATA_DIR"] != "/data" {
		add("runtime stage: ENV EVP_DATA_DIR=/data is missing")
	}
	if hc, ok := last["HEALTHCHECK"]; !ok {
		add("runtime stage: no HEALTHCHECK")
	} else {
		_, rest := flags(hc.Args)
		cmd, isCmd := strings.CutPrefix(rest, "CMD ")
		argv, exec := execForm(cmd)
		if !isCmd || !exec || len(argv) == 0 {
			add("line %d: HEALTHCHECK must be CMD in exec form (the runtime image has no shell)", hc.Line)
		}
	}
	if ep, ok := last["ENTRYPOINT"]; !ok {
		add("runtime stage: no ENTRYPOINT")
	} else if argv, _ := execForm(ep.Args); len(argv) == 0 || !strings.HasSuffix(argv[0], "/evp") {
		add("line %d: ENTRYPOINT must run evp", ep.Line)
	}
	if _, ok := last["CMD"]; !ok {
		add("runtime stage: no CMD (the default role)")
	}
	return problems
}

// dockerfileCommandUses are the evp commands the image runs: its CMD and its health check.
func dockerfileCommandUses(ins []instruction) []commandUse {
	_, st := stages(ins)
	if len(st) == 0 {
		return nil
	}
	var uses []commandUse
	for _, in := range st[len(st)-1].Ins {
		switch in.Cmd {
		case "CMD":
			if argv, ok := execForm(in.Args); ok && len(argv) > 0 {
				uses = append(uses, commandUse{Where: fmt.Sprintf("%s line %d", dockerfilePath, in.Line), Command: argv[0]})
			}
		case "HEALTHCHECK":
			_, rest := flags(in.Args)
			if argv, ok := execForm(strings.TrimPrefix(rest, "CMD ")); ok && len(argv) > 1 && strings.HasSuffix(argv[0], "/evp") {
				uses = append(uses, commandUse{Where: fmt.Sprintf("%s line %d", dockerfilePath, in.Line), Command: argv[1]})
			}
		}
	}
	return uses
}

// checkDockerfileEnv checks ENV names: the runtime stage's are evp's; a build stage's are its
// image's own (Go's, Node's) or evp's.
func checkDockerfileEnv(ins []instruction) []string {
	_, st := stages(ins)
	var problems []string
	for i, s := range st {
		var images []string
		if i < len(st)-1 {
			images = []string{s.Image}
		}
		for _, in := range s.Ins {
			if in.Cmd != "ENV" {
				continue
			}
			for k := range envPairs(in.Args) {
				problems = append(problems, checkNames([]string{k}, images, fmt.Sprintf("line %d", in.Line))...)
			}
		}
	}
	return problems
}

// goModVersion is the go directive of go.mod ("1.26.8").
func goModVersion(t testing.TB) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^go\s+(\S+)`).FindStringSubmatch(readFile(t, "go.mod"))
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return m[1]
}

func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(readFile(t, dockerfilePath))
	report(t, dockerfilePath, checkDockerfile(ins, goModVersion(t)))
}

// TestDockerignore checks that the build context leaves out what the image must not carry
// (history, local data, binaries, node_modules) and keeps what the build needs.
func TestDockerignore(t *testing.T) {
	patterns := map[string]bool{}
	for _, l := range strings.Split(readFile(t, ".dockerignore"), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns[l] = true
		}
	}
	for _, p := range []string{".git", "data", "bin", "**/node_modules", "web/dist"} {
		if !patterns[p] {
			t.Errorf(".dockerignore: %s is not excluded", p)
		}
	}
	for _, p := range []string{"go.mod", "go.sum", "cmd", "internal", "web", "*.go", "**/*.go"} {
		if patterns[p] {
			t.Errorf(".dockerignore excludes %s, which the build needs", p)
		}
	}
}
