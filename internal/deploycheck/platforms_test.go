package deploycheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// railwayConfig is Railway's config-as-code file (railway.schema.json); unknown fields are
// refused so that a misspelt one is not silently ignored.
type railwayConfig struct {
	Schema string `json:"$schema"`
	Build  struct {
		Builder        string   `json:"builder"`
		DockerfilePath string   `json:"dockerfilePath"`
		WatchPatterns  []string `json:"watchPatterns"`
	} `json:"build"`
	Deploy struct {
		StartCommand            string   `json:"startCommand"`
		PreDeployCommand        []string `json:"preDeployCommand"`
		HealthcheckPath         string   `json:"healthcheckPath"`
		HealthcheckTimeout      int      `json:"healthcheckTimeout"`
		NumReplicas             int      `json:"numReplicas"`
		OverlapSeconds          int      `json:"overlapSeconds"`
		DrainingSeconds         int      `json:"drainingSeconds"`
		RestartPolicyType       string   `json:"restartPolicyType"`
		RestartPolicyMaxRetries int      `json:"restartPolicyMaxRetries"`
	} `json:"deploy"`

	text string
}

func parseRailway(text string) (*railwayConfig, error) {
	var c railwayConfig
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, err
	}
	c.text = text
	return &c, nil
}

func loadRailway(t testing.TB, rel string) *railwayConfig {
	t.Helper()
	c, err := parseRailway(readFile(t, rel))
	if err != nil {
		t.Fatalf("%s does not parse: %v", rel, err)
	}
	return c
}

// evpArgv splits a Railway command, which replaces the image's ENTRYPOINT, into the evp binary
// and its command.
func evpArgv(cmd string) (bin, sub string) {
	f := strings.Fields(cmd)
	if len(f) < 2 {
		return strings.Join(f, " "), ""
	}
	return f[0], f[1]
}

func (c *railwayConfig) commandUses(where string) []commandUse {
	var uses []commandUse
	for _, cmd := range append([]string{c.Deploy.StartCommand}, c.Deploy.PreDeployCommand...) {
		if _, sub := evpArgv(cmd); sub != "" {
			uses = append(uses, commandUse{Where: where, Command: sub})
		}
	}
	return uses
}

// checkRailway checks one Railway service: built from the Dockerfile, running role through
// the image's evp binary; the API service waits on /api/ready and migrates before deploying.
func checkRailway(c *railwayConfig, role, entrypoint string) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if c.Build.Builder != "DOCKERFILE" {
		add("build.builder %q, want DOCKERFILE", c.Build.Builder)
	}
	if !exists(c.Build.DockerfilePath) {
		add("build.dockerfilePath %q does not exist", c.Build.DockerfilePath)
	}
	bin, sub := evpArgv(c.Deploy.StartCommand)
	if bin != entrypoint || sub != role {
		add("deploy.startCommand %q, want %q (it replaces the image's ENTRYPOINT)", c.Deploy.StartCommand, entrypoint+" "+role)
	}
	switch c.Deploy.RestartPolicyType {
	case "ON_FAILURE", "ALWAYS", "NEVER":
	default:
		add("deploy.restartPolicyType %q is not ON_FAILURE, ALWAYS or NEVER", c.Deploy.RestartPolicyType)
	}
	if role == "api" {
		if c.Deploy.HealthcheckPath != "/api/ready" {
			add("deploy.healthcheckPath %q, want /api/ready", c.Deploy.HealthcheckPath)
		}
		migrates := false
		for _, cmd := range c.Deploy.PreDeployCommand {
			b, s := evpArgv(cmd)
			migrates = migrates || (b == entrypoint && s == "migrate")
		}
		if !migrates {
			add("deploy.preDeployCommand does not run %s migrate", entrypoint)
		}
	}
	return problems
}

// checkRailwayEnv checks the variable references in the file's values (${{NAME}}, $NAME).
func checkRailwayEnv(c *railwayConfig) []string {
	var strs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			strs = append(strs, v)
		case []any:
			for _, x := range v {
				walk(x)
			}
		case map[string]any:
			for _, x := range v { // values only: "$schema" is a key
				walk(x)
			}
		}
	}
	var generic any
	if err := json.Unmarshal([]byte(c.text), &generic); err != nil {
		return []string{err.Error()}
	}
	walk(generic)
	return checkTextEnv(strings.Join(strs, "\n"), nil)
}

// dockerEntrypoint is the runtime stage's ENTRYPOINT binary.
func dockerEntrypoint(t testing.TB) string {
	t.Helper()
	_, st := stages(parseDockerfile(readFile(t, dockerfilePath)))
	for _, in := range st[len(st)-1].Ins {
		if in.Cmd == "ENTRYPOINT" {
			if argv, ok := execForm(in.Args); ok && len(argv) > 0 {
				return argv[0]
			}
		}
	}
	t.Fatalf("%s: no ENTRYPOINT", dockerfilePath)
	return ""
}

func TestRailway(t *testing.T) {
	ep := dockerEntrypoint(t)
	report(t, railwayAPIPath, checkRailway(loadRailway(t, railwayAPIPath), "api", ep))
	report(t, railwayWorker, checkRailway(loadRailway(t, railwayWorker), "worker", ep))
}

// --- GitHub Actions ---------------------------------------------------------------------------

type workflow struct {
	Env  map[string]any `yaml:"env"`
	Jobs map[string]struct {
		Env      map[string]any `yaml:"env"`
		Services map[string]struct {
			Image string `yaml:"image"`
		} `yaml:"services"`
		Steps []struct {
			Name string         `yaml:"name"`
			Uses string         `yaml:"uses"`
			Run  string         `yaml:"run"`
			With map[string]any `yaml:"with"`
			Env  map[string]any `yaml:"env"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

// checkWorkflow checks the CI workflow: a job runs testCommand (what .ci/run runs) with Go
// from setup-go at go.mod's version, real Redis and PostgreSQL service containers and
// EVP_REQUIRE_SERVICES=1; another builds the image without pushing it.
func checkWorkflow(text, testCommand, goVersion string) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var w workflow
	dec := yaml.NewDecoder(bytes.NewReader([]byte(text)))
	if err := dec.Decode(&w); err != nil {
		return []string{fmt.Sprintf("does not parse: %v", err)}
	}
	testJob, imageJob := false, false
	names := make([]string, 0, len(w.Jobs))
	for n := range w.Jobs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		job := w.Jobs[name]
		runsTests, setupGo, requireServices := false, false, false
		for _, env := range []map[string]any{w.Env, job.Env} {
			requireServices = requireServices || fmt.Sprint(env["EVP_REQUIRE_SERVICES"]) == "1"
		}
		for _, s := range job.Steps {
			if strings.Contains(s.Run, testCommand) {
				runsTests = true
				requireServices = requireServices || fmt.Sprint(s.Env["EVP_REQUIRE_SERVICES"]) == "1"
			}
			if strings.HasPrefix(s.Uses, "actions/setup-go@") {
				setupGo = true
				file, version := fmt.Sprint(s.With["go-version-file"]), fmt.Sprint(s.With["go-version"])
				if file != "go.mod" && !strings.HasPrefix(goVersion+".", version+".") {
					add("job %s: setup-go installs %q, go.mod says go %s", name, version, goVersion)
				}
			}
			if strings.HasPrefix(s.Uses, "docker/build-push-action@") {
				imageJob = true
				if p := fmt.Sprint(s.With["push"]); p != "false" {
					add("job %s: build-push-action push is %q; CI builds the image without pushing", name, p)
				}
			}
		}
		if !runsTests {
			continue
		}
		testJob = true
		if !setupGo {
			add("job %s: runs %q without actions/setup-go", name, testCommand)
		}
		if !requireServices {
			add("job %s: EVP_REQUIRE_SERVICES is not 1", name)
		}
		images := map[string]bool{}
		for _, svc := range job.Services {
			images[imageRepo(svc.Image)] = true
		}
		for _, want := range []string{"redis", "postgres"} {
			if !images[want] {
				add("job %s: no %s service container", name, want)
			}
		}
	}
	if !testJob {
		add("no job runs %q", testCommand)
	}
	if !imageJob {
		add("no job builds the image with docker/build-push-action")
	}
	return problems
}

// The test command of the README, which .ci/run runs.
const testCommand = "make test"

func TestCIWorkflow(t *testing.T) {
	if !strings.Contains(readFile(t, ciRunPath), "\n"+testCommand+"\n") {
		t.Fatalf("%s no longer runs %q: update %s and this test", ciRunPath, testCommand, ciPath)
	}
	report(t, ciPath, checkWorkflow(readFile(t, ciPath), testCommand, goModVersion(t)))
}
