package deploycheck

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// composeFile is the part of the Compose specification the checks read.
type composeFile struct {
	Name     string                     `yaml:"name"`
	Services map[string]*composeService `yaml:"services"`
	Networks map[string]any             `yaml:"networks"`
	Volumes  map[string]any             `yaml:"volumes"`

	raw map[string]any // the whole file, merge keys resolved, for the key checks
}

type composeService struct {
	Image       string         `yaml:"image"`
	Build       any            `yaml:"build"`
	Command     any            `yaml:"command"`     // a string or a list
	Environment any            `yaml:"environment"` // a map or a list of NAME=value
	EnvFile     any            `yaml:"env_file"`
	DependsOn   any            `yaml:"depends_on"` // a list or a map of conditions
	Healthcheck *composeHealth `yaml:"healthcheck"`
	Deploy      composeDeploy  `yaml:"deploy"`
	Volumes     []any          `yaml:"volumes"`
	Ports       []any          `yaml:"ports"`
	Networks    any            `yaml:"networks"`
	Restart     string         `yaml:"restart"`
}

type composeHealth struct {
	Test    any  `yaml:"test"`
	Disable bool `yaml:"disable"`
}

type composeDeploy struct {
	Replicas  *int `yaml:"replicas"`
	Resources struct {
		Limits struct {
			CPUs   any    `yaml:"cpus"`
			Memory string `yaml:"memory"`
		} `yaml:"limits"`
	} `yaml:"resources"`
}

func parseCompose(text string) (*composeFile, error) {
	var c composeFile
	if err := yaml.Unmarshal([]byte(text), &c); err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal([]byte(text), &c.raw); err != nil {
		return nil, err
	}
	return &c, nil
}

func loadCompose(t testing.TB) *composeFile {
	t.Helper()
	c, err := parseCompose(readFile(t, composePath))
	if err != nil {
		t.Fatalf("%s does not parse: %v", composePath, err)
	}
	return c
}

// The services of the production shape, and what each role runs.
var (
	requiredServices = []string{"redis", "postgres", "mongo-config", "mongo-shard1", "mongo-shard2",
		"mongos", "mongo-init", "migrate", "api", "worker", "proxy"}
	evpRoles     = map[string]string{"api": "api", "worker": "worker", "migrate": "migrate"}
	wantReplicas = map[string]int{"api": 2, "worker": 3}
	// requiredDeps: service -> dependency -> condition.
	requiredDeps = map[string]map[string]string{
		"api":        {"migrate": "service_completed_successfully", "redis": "service_healthy", "postgres": "service_healthy", "mongos": "service_healthy"},
		"worker":     {"migrate": "service_completed_successfully", "redis": "service_healthy", "postgres": "service_healthy", "mongos": "service_healthy"},
		"migrate":    {"postgres": "service_healthy", "redis": "service_healthy", "mongo-init": "service_completed_successfully"},
		"mongo-init": {"mongo-config": "service_healthy", "mongo-shard1": "service_healthy", "mongo-shard2": "service_healthy"},
		"mongos":     {"mongo-config": "service_healthy"},
		"proxy":      {"api": "service_healthy"},
	}
	// Services that keep data and so need a named volume.
	statefulServices = []string{"redis", "postgres", "mongo-config", "mongo-shard1", "mongo-shard2"}
	// The only service with a published port.
	publicService = "proxy"
)

// Keys the Compose specification allows on a service; a misspelt key would be ignored silently.
var composeServiceKeys = strings.Fields(`annotations attach blkio_config build cap_add cap_drop
	cgroup cgroup_parent command configs container_name cpu_count cpu_percent cpu_period
	cpu_quota cpu_rt_period cpu_rt_runtime cpu_shares cpus cpuset credential_spec depends_on
	deploy develop device_cgroup_rules devices dns dns_opt dns_search domainname driver_opts
	entrypoint env_file environment expose extends external_links extra_hosts gpus group_add
	healthcheck hostname image init ipc isolation label_file labels links logging mac_address
	mem_limit mem_reservation mem_swappiness memswap_limit network_mode networks
	oom_kill_disable oom_score_adj pid pids_limit platform ports post_start pre_stop privileged
	profiles pull_policy read_only restart runtime scale secrets security_opt shm_size
	stdin_open stop_grace_period stop_signal storage_opt sysctls tmpfs tty ulimits user
	userns_mode uts volumes volumes_from working_dir`)

var composeTopKeys = []string{"name", "services", "networks", "volumes", "configs", "secrets", "include", "version"}

func (c *composeFile) images() []string {
	var out []string
	for _, s := range c.Services {
		if s.Image != "" {
			out = append(out, s.Image)
		}
	}
	return out
}

// isEvp reports whether the service runs the evp image (it builds it from the Dockerfile).
func (s *composeService) isEvp() bool { return s.Build != nil }

func (c *composeFile) serviceNames() []string {
	var names []string
	for n := range c.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (c *composeFile) commandUses() []commandUse {
	var uses []commandUse
	for _, name := range c.serviceNames() {
		s := c.Services[name]
		if !s.isEvp() {
			continue
		}
		if cmd := words(s.Command); len(cmd) > 0 {
			uses = append(uses, commandUse{Where: composePath + " service " + name, Command: cmd[0]})
		}
		if s.Healthcheck != nil && !s.Healthcheck.Disable {
			if test := words(s.Healthcheck.Test); len(test) >= 3 && test[0] == "CMD" && strings.HasSuffix(test[1], "/evp") {
				uses = append(uses, commandUse{Where: composePath + " healthcheck of " + name, Command: test[2]})
			}
		}
	}
	return uses
}

// words is a command given as a string or a list.
func words(v any) []string {
	switch v := v.(type) {
	case string:
		return strings.Fields(v)
	case []any:
		out := make([]string, len(v))
		for i, w := range v {
			out[i] = fmt.Sprint(w)
		}
		return out
	}
	return nil
}

// envOf is a service's environment as a map.
func envOf(v any) map[string]string {
	m := map[string]string{}
	switch v := v.(type) {
	case map[string]any:
		for k, val := range v {
			if val == nil {
				m[k] = ""
			} else {
				m[k] = fmt.Sprint(val)
			}
		}
	case []any:
		for _, item := range v {
			k, val, _ := strings.Cut(fmt.Sprint(item), "=")
			m[k] = val
		}
	}
	return m
}

// depsOf is a service's depends_on as dependency -> condition.
func depsOf(v any) map[string]string {
	m := map[string]string{}
	switch v := v.(type) {
	case []any:
		for _, d := range v {
			m[fmt.Sprint(d)] = "service_started"
		}
	case map[string]any:
		for d, spec := range v {
			cond := "service_started"
			if sm, ok := spec.(map[string]any); ok && sm["condition"] != nil {
				cond = fmt.Sprint(sm["condition"])
			}
			m[d] = cond
		}
	}
	return m
}

func hasHealthcheck(s *composeService) bool {
	return s.Healthcheck != nil && !s.Healthcheck.Disable && len(words(s.Healthcheck.Test)) > 0
}

func oneShot(s *composeService) bool { return s.Restart == "no" }

var (
	secretKeyRE  = regexp.MustCompile(`(PASSWORD|SECRET|TOKEN|_KEY)$`)
	urlPassRE    = regexp.MustCompile(`://[^:/@\s]*:([^@\s]+)@`)
	onlyInterpRE = regexp.MustCompile(`^\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?][^}]*)?\}$`)
)

// checkCompose checks the shape of the stack: services, roles, replicas, health checks,
// start order, resource limits, volumes, networks, published ports and secrets.
func checkCompose(c *composeFile, dir string) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	for k := range c.raw {
		if !slices.Contains(composeTopKeys, k) && !strings.HasPrefix(k, "x-") {
			add("top-level key %q is not in the Compose specification", k)
		}
	}
	if rawServices, ok := c.raw["services"].(map[string]any); ok {
		for name, v := range rawServices {
			svc, _ := v.(map[string]any)
			for k := range svc {
				if !slices.Contains(composeServiceKeys, k) {
					add("service %s: key %q is not in the Compose specification", name, k)
				}
			}
		}
	}

	for _, name := range requiredServices {
		if c.Services[name] == nil {
			add("service %q is missing", name)
		}
	}

	evpImage := ""
	for _, name := range c.serviceNames() {
		s := c.Services[name]
		role, isRole := evpRoles[name]
		if isRole && !s.isEvp() {
			add("service %s: runs evp but does not build the image from the Dockerfile", name)
		}
		if s.isEvp() {
			if evpImage == "" {
				evpImage = s.Image
			} else if s.Image != evpImage {
				add("service %s: image %q, other evp services use %q (one image runs every role)", name, s.Image, evpImage)
			}
			if cmd := words(s.Command); isRole && (len(cmd) == 0 || cmd[0] != role) {
				add("service %s: command %q, want %q", name, cmd, role)
			}
		}
		if s.Image == "" && s.Build == nil {
			add("service %s: neither image nor build", name)
		}
		if want, ok := wantReplicas[name]; ok && (s.Deploy.Replicas == nil || *s.Deploy.Replicas != want) {
			add("service %s: deploy.replicas must be %d", name, want)
		}
		if !oneShot(s) {
			if !hasHealthcheck(s) {
				add("service %s: no healthcheck", name)
			}
			if s.Restart == "" {
				add("service %s: no restart policy", name)
			}
		}
		if s.Deploy.Resources.Limits.Memory == "" || s.Deploy.Resources.Limits.CPUs == nil {
			add("service %s: deploy.resources.limits needs cpus and memory", name)
		}

		// Start order.
		deps := depsOf(s.DependsOn)
		for dep, cond := range deps {
			target := c.Services[dep]
			switch {
			case target == nil:
				add("service %s: depends on %q, which is not a service", name, dep)
			case cond == "service_healthy" && !hasHealthcheck(target):
				add("service %s: waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
			case cond == "service_completed_successfully" && !oneShot(target):
				add("service %s: waits for %s to complete, but %s restarts (restart: %q)", name, dep, dep, target.Restart)
			case cond != "service_started" && cond != "service_healthy" && cond != "service_completed_successfully":
				add("service %s: depends_on %s has an unknown condition %q", name, dep, cond)
			}
		}
		for dep, cond := range requiredDeps[name] {
			if deps[dep] != cond {
				add("service %s: must depend on %s with condition %s (has %q)", name, dep, cond, deps[dep])
			}
		}

		// Ports: only the proxy is reachable from outside.
		if len(s.Ports) > 0 && name != publicService {
			add("service %s: publishes ports %v; only %s may", name, s.Ports, publicService)
		}

		// Volumes: named ones declared, bind sources present.
		named := false
		for _, v := range s.Volumes {
			src := ""
			switch v := v.(type) {
			case string:
				parts := strings.Split(v, ":")
				if len(parts) >= 2 {
					src = parts[0]
				}
			case map[string]any:
				src = fmt.Sprint(v["source"])
			}
			switch {
			case src == "":
			case strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/"):
				if _, err := os.Stat(filepath.Join(dir, src)); err != nil {
					add("service %s: bind-mounts %s, which does not exist", name, src)
				}
			default:
				named = true
				if _, ok := c.Volumes[src]; !ok {
					add("service %s: volume %q is not declared under volumes", name, src)
				}
			}
		}
		if slices.Contains(statefulServices, name) && !named {
			add("service %s: keeps data but has no named volume", name)
		}

		// Networks.
		var nets []string
		switch n := s.Networks.(type) {
		case []any:
			for _, x := range n {
				nets = append(nets, fmt.Sprint(x))
			}
		case map[string]any:
			for x := range n {
				nets = append(nets, x)
			}
		}
		for _, n := range nets {
			if _, ok := c.Networks[n]; !ok {
				add("service %s: network %q is not declared under networks", name, n)
			}
		}

		// Secrets come from .env, never from this file.
		for k, v := range envOf(s.Environment) {
			if secretKeyRE.MatchString(k) && !onlyInterpRE.MatchString(v) {
				add("service %s: %s is written in the file; take it from .env as ${%s}", name, k, k)
			}
			if m := urlPassRE.FindStringSubmatch(v); m != nil && !onlyInterpRE.MatchString(m[1]) {
				add("service %s: %s holds a password in the file; take it from .env", name, k)
			}
		}
		if ef := words(s.EnvFile); len(ef) > 0 {
			for _, f := range ef {
				if f != ".env" {
					add("service %s: env_file %q; the stack's settings live in .env (from .env.example)", name, f)
				}
			}
		}
	}
	if cycle := dependencyCycle(c); cycle != "" {
		add("depends_on has a cycle: %s", cycle)
	}
	return problems
}

func dependencyCycle(c *composeFile) string {
	const (
		unseen = iota
		active
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(string) string
	visit = func(n string) string {
		switch state[n] {
		case active:
			i := slices.Index(stack, n)
			return strings.Join(append(slices.Clone(stack[i:]), n), " -> ")
		case done:
			return ""
		}
		state[n] = active
		stack = append(stack, n)
		if s := c.Services[n]; s != nil {
			deps := depsOf(s.DependsOn)
			keys := make([]string, 0, len(deps))
			for d := range deps {
				keys = append(keys, d)
			}
			sort.Strings(keys)
			for _, d := range keys {
				if cyc := visit(d); cyc != "" {
					return cyc
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		return ""
	}
	for _, n := range c.serviceNames() {
		if cyc := visit(n); cyc != "" {
			return cyc
		}
	}
	return ""
}

// checkComposeEnv checks every variable name the compose file uses: each container's
// environment (evp's names for the evp image, evp's or the image's own for others) and each
// ${NAME} it interpolates (evp's, an image's, or a DEPLOY_ name).
func checkComposeEnv(c *composeFile, text string) []string {
	var problems []string
	images := c.images()
	for _, name := range c.serviceNames() {
		s := c.Services[name]
		var own []string
		if !s.isEvp() {
			own = []string{s.Image}
		}
		for k := range envOf(s.Environment) {
			if strings.HasPrefix(k, deployPrefix) {
				problems = append(problems, fmt.Sprintf("service %s: %s is compose-only and must not reach a container", name, k))
				continue
			}
			problems = append(problems, checkNames([]string{k}, own, "service "+name)...)
		}
	}
	for _, in := range interpolations(text) {
		if strings.HasPrefix(in.Name, deployPrefix) {
			continue
		}
		problems = append(problems, checkNames([]string{in.Name}, images, "${"+in.Name+"}")...)
	}
	return problems
}

// checkComposeConfig loads evp's configuration for each evp service as compose would give it
// (.env as env_file, then the service's environment, interpolated with .env) and checks
// that evp accepts it and that it uses the production backends.
func checkComposeConfig(c *composeFile, envExample []envLine) []string {
	var problems []string
	vars := envFileValues(envExample)
	for _, name := range c.serviceNames() {
		s := c.Services[name]
		if !s.isEvp() {
			continue
		}
		env := map[string]string{}
		if len(words(s.EnvFile)) > 0 {
			for k, v := range vars {
				env[k] = v
			}
		}
		for k, v := range envOf(s.Environment) {
			env[k] = interpolate(v, vars)
		}
		cfg, err := loadConfig(env)
		if err != nil {
			problems = append(problems, fmt.Sprintf("service %s: evp rejects its environment: %v", name, err))
			continue
		}
		if cfg.RedisURL == "" || cfg.DatabaseURL == "" || cfg.MongoURI == "" {
			problems = append(problems, fmt.Sprintf("service %s: REDIS_URL, DATABASE_URL and MONGO_URI must all be set (production backends)", name))
		}
		if cfg.Env != "production" {
			problems = append(problems, fmt.Sprintf("service %s: EVP_ENV is %q, want production", name, cfg.Env))
		}
	}
	return problems
}

// hostPortRE finds "host:port" strings, as the mongo-init script names the cluster's servers.
var hostPortRE = regexp.MustCompile(`"([a-z][a-z0-9-]*):([0-9]+)"`)

// checkMongoInit checks the init script against the compose file: every server it names is a
// service listening on that port, and it shards the events collection on hashed userId.
func checkMongoInit(c *composeFile, script string) []string {
	var problems []string
	for _, m := range hostPortRE.FindAllStringSubmatch(script, -1) {
		host, port := m[1], m[2]
		s := c.Services[host]
		if s == nil {
			problems = append(problems, fmt.Sprintf("names %s:%s, but there is no service %s", host, port, host))
			continue
		}
		cmd := words(s.Command)
		if i := slices.Index(cmd, "--port"); i < 0 || i+1 >= len(cmd) || cmd[i+1] != port {
			problems = append(problems, fmt.Sprintf("names %s:%s, but service %s does not listen on --port %s", host, port, host, port))
		}
	}
	for _, want := range []string{`userId: "hashed"`, `COLLECTION = "events"`, "shardCollection", "addShard", "replSetInitiate"} {
		if !strings.Contains(script, want) {
			problems = append(problems, fmt.Sprintf("does not contain %s", want))
		}
	}
	init := c.Services["mongo-init"]
	if init != nil {
		found := false
		for _, v := range init.Volumes {
			if s, ok := v.(string); ok && strings.HasPrefix(s, "./"+strings.TrimPrefix(mongoInitPath, "deploy/")+":") {
				found = true
			}
		}
		if !found {
			problems = append(problems, "service mongo-init does not mount the script")
		}
	}
	return problems
}

func TestCompose(t *testing.T) {
	c := loadCompose(t)
	report(t, composePath, checkCompose(c, path("deploy")))
	report(t, composePath, checkComposeConfig(c, parseEnvFile(readFile(t, envExamplePath))))
	report(t, mongoInitPath, checkMongoInit(c, readFile(t, mongoInitPath)))
}

// TestProxyConfig checks that nginx.conf forwards to the api service on evp's port and lets
// bodies up to evp's own limit through, so that evp answers 413 itself.
func TestProxyConfig(t *testing.T) {
	c := loadCompose(t)
	conf := readFile(t, nginxConfPath)
	api := c.Services["api"]
	if api == nil {
		t.Fatal("no api service")
	}
	port := envOf(api.Environment)["PORT"]
	if !strings.Contains(conf, "http://api:"+port+";") {
		t.Errorf("%s does not proxy to http://api:%s", nginxConfPath, port)
	}
	m := regexp.MustCompile(`client_max_body_size\s+(\d+)m;`).FindStringSubmatch(conf)
	cfg, err := loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if m == nil {
		t.Errorf("%s: no client_max_body_size in megabytes", nginxConfPath)
	} else if mb := atoi(m[1]); int64(mb)<<20 <= cfg.MaxBodyBytes {
		t.Errorf("%s: client_max_body_size %sm is not above EVP_MAX_BODY_BYTES (%d)", nginxConfPath, m[1], cfg.MaxBodyBytes)
	}
	proxy := c.Services["proxy"]
	if proxy == nil || len(proxy.Volumes) == 0 || !strings.Contains(fmt.Sprint(proxy.Volumes), "./nginx/nginx.conf:") {
		t.Errorf("service proxy does not mount ./nginx/nginx.conf")
	}
	if !strings.Contains(conf, "listen 8080;") || proxy == nil || !strings.Contains(fmt.Sprint(proxy.Ports), ":8080") {
		t.Errorf("the proxy's published port and nginx's listen port 8080 disagree")
	}
}

// atoi is s as a non-negative integer, or -1.
func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return -1
	}
	return n
}
