package deploycheck

import (
	"strings"
	"testing"
)

// These tests break the real files in one place each and require the checkers to say so:
// a checker that cannot fail proves nothing.

func wantProblem(t *testing.T, problems []string, substr string) {
	t.Helper()
	for _, p := range problems {
		if strings.Contains(p, substr) {
			return
		}
	}
	t.Errorf("no problem mentions %q; got %q", substr, problems)
}

// mustReplace returns text with old replaced once, failing if old is not there (the mutation
// would silently test nothing).
func mustReplace(t *testing.T, text, old, new string) string {
	t.Helper()
	if !strings.Contains(text, old) {
		t.Fatalf("mutation target %q not found", old)
	}
	return strings.Replace(text, old, new, 1)
}

func TestComposeCheckerFails(t *testing.T) {
	base := readFile(t, composePath)
	cases := []struct {
		name, old, new, want string
	}{
		{"missing worker", "\n  worker:\n", "\n  worker-renamed:\n", `service "worker" is missing`},
		{"missing mongo-init", "\n  mongo-init:\n", "\n  mongo-setup:\n", `service "mongo-init" is missing`},
		{"worker replicas", "replicas: 3", "replicas: 1", "worker: deploy.replicas must be 3"},
		{"misspelt key", "    shm_size: 128mb", "    shm_sise: 128mb", `key "shm_sise" is not in the Compose specification`},
		{"redis published", "  redis:\n    image: redis:7.4-alpine\n", "  redis:\n    image: redis:7.4-alpine\n    ports: [\"6379:6379\"]\n", "redis: publishes ports"},
		{"literal password", "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in deploy/.env}\n      POSTGRES_DB", "POSTGRES_PASSWORD: hunter2\n      POSTGRES_DB", "postgres: POSTGRES_PASSWORD is written in the file"},
		{"password in URL", "postgres://evp:${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in deploy/.env}@", "postgres://evp:hunter2@", "DATABASE_URL holds a password"},
		{"undeclared volume", "- redis-data:/data", "- redis-state:/data", `volume "redis-state" is not declared`},
		{"missing bind source", "./mongo/init-cluster.js:/scripts", "./mongo/init.js:/scripts", "bind-mounts ./mongo/init.js"},
		{"no resource limits", "        limits: {cpus: \"0.5\", memory: 128M}\n", "", "proxy: deploy.resources.limits"},
		{"evp role command", `command: ["worker"]`, `command: ["work"]`, `worker: command ["work"], want "worker"`},
		{"healthy without healthcheck", "      mongos:\n        condition: service_started", "      mongos:\n        condition: service_healthy\n      mongo-init:\n        condition: service_healthy", "has no healthcheck"},
		{"bad dependency", "      migrate:\n        condition: service_completed_successfully\n      redis:", "      migrate:\n        condition: service_started\n      redis:", "must depend on migrate with condition service_completed_successfully"},
		{"cycle", "    depends_on:\n      mongo-config:\n        condition: service_healthy\n    healthcheck", "    depends_on:\n      mongo-config:\n        condition: service_healthy\n      proxy:\n        condition: service_started\n    healthcheck", "depends_on has a cycle"},
		{"api healthcheck off", "    command: [\"api\"]\n", "    command: [\"api\"]\n    healthcheck:\n      disable: true\n", "api: no healthcheck"},
		{"undeclared network", "    networks: [edge]\n", "    networks: [public]\n", `network "public" is not declared`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseCompose(mustReplace(t, base, tc.old, tc.new))
			if err != nil {
				t.Fatal(err)
			}
			problems := checkCompose(c, path("deploy"))
			problems = append(problems, checkComposeConfig(c, parseEnvFile(readFile(t, envExamplePath)))...)
			wantProblem(t, problems, tc.want)
		})
	}
}

func TestComposeEnvCheckerFails(t *testing.T) {
	base := readFile(t, composePath)
	cases := []struct {
		name, old, new, want string
	}{
		{"unknown evp name", "    EVP_LOG_FORMAT: json\n", "    EVP_LOG_FORMAT: json\n    EVP_WORKER_COUNT: \"4\"\n", "EVP_WORKER_COUNT is not a setting evp reads"},
		{"other image's name on evp", "    EVP_LOG_FORMAT: json\n", "    EVP_LOG_FORMAT: json\n    POSTGRES_DB: x\n", "POSTGRES_DB is not a setting evp reads"},
		{"unknown interpolation", "${JWT_SECRET:?", "${JWT_SECRET_KEY:?", "${JWT_SECRET_KEY}"},
		{"deploy name in a container", "    EVP_LOG_FORMAT: json\n", "    EVP_LOG_FORMAT: json\n    DEPLOY_IMAGE: x\n", "DEPLOY_IMAGE is compose-only"},
		{"mongo name on postgres", "      POSTGRES_DB: event_processor\n", "      POSTGRES_DB: event_processor\n      MONGO_INITDB_DATABASE: x\n", "MONGO_INITDB_DATABASE is not a setting evp reads"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text := mustReplace(t, base, tc.old, tc.new)
			c, err := parseCompose(text)
			if err != nil {
				t.Fatal(err)
			}
			wantProblem(t, checkComposeEnv(c, text), tc.want)
		})
	}
	t.Run("value evp rejects", func(t *testing.T) {
		c, err := parseCompose(mustReplace(t, base, "PORT: \"3001\"", "PORT: \"http\""))
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, checkComposeConfig(c, parseEnvFile(readFile(t, envExamplePath))), `evp rejects its environment: invalid PORT="http"`)
	})
}

func TestMongoInitCheckerFails(t *testing.T) {
	c := loadCompose(t)
	script := readFile(t, mongoInitPath)
	wantProblem(t, checkMongoInit(c, mustReplace(t, script, `"mongo-shard2:27018"`, `"mongo-shard3:27018"`)), "no service mongo-shard3")
	wantProblem(t, checkMongoInit(c, mustReplace(t, script, `"mongo-config:27019"`, `"mongo-config:27017"`)), "does not listen on --port 27017")
	wantProblem(t, checkMongoInit(c, mustReplace(t, script, `{ userId: "hashed" }`, `{ userId: 1 }`)), `userId: "hashed"`)
}

func TestEnvExampleCheckerFails(t *testing.T) {
	base := readFile(t, envExamplePath)
	c := loadCompose(t)
	defaults := interpolationDefaults(readFile(t, composePath))
	cases := []struct {
		name, old, new, want string
	}{
		{"setting left out", "# EVP_CLAIM_IDLE=60s\n", "", "EVP_CLAIM_IDLE (read by evp) is not documented"},
		{"original name left out", "# NODE_ENV=development\n", "", "NODE_ENV (read by evp) is not documented"},
		{"wrong default", "# WORKER_BATCH_SIZE=100", "# WORKER_BATCH_SIZE=50", "WORKER_BATCH_SIZE=50 is shown as the default"},
		{"invalid default", "# EVP_DEDUP_WINDOW=10m", "# EVP_DEDUP_WINDOW=10", "evp rejects the documented default"},
		{"unknown name", "# LOG_LEVEL=info", "# LOG_LEVELS=info", "LOG_LEVELS is not a setting evp reads"},
		{"duplicate", "# LOG_LEVEL=info", "# LOG_LEVEL=info\nLOG_LEVEL=debug", "LOG_LEVEL is already on line"},
		{"bad value set", "# EVP_WORKERS=4", "EVP_WORKERS=0", "evp rejects the values it sets"},
		{"compose default drift", "# DEPLOY_HTTP_PORT=3001", "# DEPLOY_HTTP_PORT=8080", "docker-compose.yml defaults it to \"3001\""},
		{"unused deploy name", "# DEPLOY_HTTP_PORT=3001", "# DEPLOY_HTTPS_PORT=3443", "DEPLOY_HTTPS_PORT is not used by docker-compose.yml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lines := parseEnvFile(mustReplace(t, base, tc.old, tc.new))
			wantProblem(t, checkEnvExample(lines, c.images(), defaults), tc.want)
		})
	}
}

func TestDockerfileCheckerFails(t *testing.T) {
	base := readFile(t, dockerfilePath)
	gomod := goModVersion(t)
	cases := []struct {
		name, old, new, want string
	}{
		{"unknown stage", "COPY --from=web /out/dist", "COPY --from=dashboard /out/dist", `refers to stage "dashboard", which no FROM ... AS defines`},
		{"later stage", "COPY --from=build /out/evp", "COPY --from=runtime /out/evp", `refers to stage "runtime", which is not an earlier stage`},
		{"unknown instruction", "WORKDIR /src\nCOPY go.mod", "WORKDIR /src\nCOPPY go.mod", "unknown instruction COPPY"},
		{"root user", "USER 65532:65532", "USER root", "runtime stage runs as root"},
		{"no healthcheck", "HEALTHCHECK --interval", "# HEALTHCHECK --interval", "no HEALTHCHECK"},
		{"shell-form healthcheck", `CMD ["/usr/local/bin/evp", "healthcheck"]`, `CMD /usr/local/bin/evp healthcheck`, "HEALTHCHECK must be CMD in exec form"},
		{"shell-form entrypoint", `ENTRYPOINT ["/usr/local/bin/evp"]`, `ENTRYPOINT /usr/local/bin/evp`, "ENTRYPOINT must be in exec form"},
		{"no static link", `-extldflags '-static'`, ``, `"-extldflags '-static'" is missing`},
		{"no cgo", "ENV CGO_ENABLED=1", "ENV CGO_ENABLED=0", `"CGO_ENABLED=1" is missing`},
		{"fat runtime", "FROM gcr.io/distroless/static-debian12:nonroot AS runtime", "FROM debian:bookworm AS runtime", "use a minimal base"},
		{"go version drift", "ARG GO_VERSION=1.26", "ARG GO_VERSION=1.22", "does not match go.mod"},
		{"undeclared FROM arg", "FROM node:${NODE_VERSION}-bookworm-slim", "FROM node:${NODE_RELEASE}-bookworm-slim", "${NODE_RELEASE}, which no ARG"},
		{"no volume", `VOLUME ["/data"]`, `VOLUME ["/var/lib/evp"]`, "VOLUME /data is missing"},
		{"no expose", "EXPOSE 3001", "EXPOSE 8080", "EXPOSE 3001 is missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, checkDockerfile(parseDockerfile(mustReplace(t, base, tc.old, tc.new)), gomod), tc.want)
		})
	}
	t.Run("unknown env name", func(t *testing.T) {
		ins := parseDockerfile(mustReplace(t, base, "EVP_LOG_FORMAT=json", "EVP_LOG_FORMAT=json EVP_DATADIR=/data"))
		wantProblem(t, checkDockerfileEnv(ins), "EVP_DATADIR is not a setting evp reads")
	})
	t.Run("unknown healthcheck command", func(t *testing.T) {
		ins := parseDockerfile(mustReplace(t, base, `"/usr/local/bin/evp", "healthcheck"`, `"/usr/local/bin/evp", "health"`))
		wantProblem(t, checkCommands(dockerfileCommandUses(ins), evpCommands(t)), "`evp health`")
	})
}

func TestK8sCheckerFails(t *testing.T) {
	load := func(t *testing.T, file, old, new string) []k8sObject {
		t.Helper()
		var objs []k8sObject
		for _, o := range loadK8s(t) {
			if o.File != file {
				objs = append(objs, o)
			}
		}
		changed, err := parseK8s(file, mustReplace(t, readFile(t, k8sDir+"/"+file), old, new))
		if err != nil {
			t.Fatal(err)
		}
		return append(objs, changed...)
	}
	cases := []struct {
		name, file, old, new, want string
	}{
		{"readiness path", "api.yaml", "path: /api/ready", "path: /healthz", `readinessProbe.httpGet.path "/healthz", want "/api/ready"`},
		{"liveness path", "worker.yaml", "path: /api/live\n              port: http\n            periodSeconds: 10", "path: /live\n              port: http\n            periodSeconds: 10", `livenessProbe.httpGet.path "/live", want "/api/live"`},
		{"probe port", "api.yaml", "path: /api/ready\n              port: http", "path: /api/ready\n              port: metrics", "readinessProbe port metrics"},
		{"worker role", "worker.yaml", `args: ["worker"]`, `args: ["api"]`, `args [api], want [worker]`},
		{"service selector", "service.yaml", "app.kubernetes.io/component: api\n  ports", "app.kubernetes.io/component: web\n  ports", "does not select the evp-api pods"},
		{"hpa target", "hpa.yaml", "name: evp-api\n  minReplicas", "name: evp-worker\n  minReplicas", "must scale Deployment evp-api"},
		{"hpa min", "hpa.yaml", "minReplicas: 2", "minReplicas: 1", "keep at least 2 API pods"},
		{"no api pdb", "pdb.yaml", "component: api\nspec:\n  minAvailable: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: evp\n      app.kubernetes.io/component: api", "component: api\nspec:\n  minAvailable: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: evp\n      app.kubernetes.io/component: dashboard", "no PodDisruptionBudget for evp-api"},
		{"missing configmap", "api.yaml", "name: evp-config", "name: evp-settings", "envFrom ConfigMap evp-settings does not exist"},
		{"real secret", "secret.example.yaml", "JWT_SECRET: CHANGE_ME-to-32-or-more-random-bytes-openssl-rand-hex-32", "JWT_SECRET: 0123456789abcdef0123456789abcdef", "JWT_SECRET has a value that is not a CHANGE_ME placeholder"},
		{"bad config value", "configmap.yaml", `WORKER_BATCH_SIZE: "100"`, `WORKER_BATCH_SIZE: "lots"`, `evp rejects ConfigMap evp-config with Secret evp-secrets: invalid WORKER_BATCH_SIZE="lots"`},
		{"replicas with hpa", "api.yaml", "spec:\n  revisionHistoryLimit: 5", "spec:\n  replicas: 2\n  revisionHistoryLimit: 5", "sets replicas, which the HPA owns"},
		{"unlisted manifest", "kustomization.yaml", "  - pdb.yaml\n", "", "kustomization.yaml does not list pdb.yaml"},
		{"image drift", "migrate-job.yaml", "image: ghcr.io/evp-dev/evp:latest", "image: ghcr.io/evp-dev/evp:v0", `want "ghcr.io/evp-dev/evp:latest"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, checkK8s(load(t, tc.file, tc.old, tc.new)), tc.want)
		})
	}
	t.Run("unknown configmap key", func(t *testing.T) {
		objs := load(t, "configmap.yaml", "LOG_LEVEL: info", "LOG_LEVEL: info\n  EVP_LOGLEVEL: debug")
		wantProblem(t, checkK8sEnv(objs), "EVP_LOGLEVEL is not a setting evp reads")
	})
	t.Run("unknown container env", func(t *testing.T) {
		objs := load(t, "worker.yaml", "- name: CONSUMER_NAME", "- name: WORKER_NAME")
		wantProblem(t, checkK8sEnv(objs), "WORKER_NAME is not a setting evp reads")
	})
}

func TestRailwayCheckerFails(t *testing.T) {
	base := readFile(t, railwayAPIPath)
	cases := []struct {
		name, old, new, want string
	}{
		{"wrong role", `"/usr/local/bin/evp api"`, `"/usr/local/bin/evp worker"`, "deploy.startCommand"},
		{"not through the entrypoint", `"/usr/local/bin/evp api"`, `"api"`, "deploy.startCommand"},
		{"liveness as health check", `"healthcheckPath": "/api/ready"`, `"healthcheckPath": "/api/live"`, "want /api/ready"},
		{"no migration", `"/usr/local/bin/evp migrate"`, `"/usr/local/bin/evp version"`, "does not run /usr/local/bin/evp migrate"},
		{"missing Dockerfile", `"dockerfilePath": "Dockerfile"`, `"dockerfilePath": "deploy/Dockerfile"`, "does not exist"},
		{"bad restart policy", `"ON_FAILURE"`, `"ON_ERROR"`, "restartPolicyType"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseRailway(mustReplace(t, base, tc.old, tc.new))
			if err != nil {
				t.Fatal(err)
			}
			wantProblem(t, checkRailway(c, "api", "/usr/local/bin/evp"), tc.want)
		})
	}
	t.Run("misspelt field", func(t *testing.T) {
		if _, err := parseRailway(mustReplace(t, base, `"healthcheckPath"`, `"healthcheckPth"`)); err == nil {
			t.Error("a misspelt field parsed")
		}
	})
	t.Run("unknown variable", func(t *testing.T) {
		c, err := parseRailway(mustReplace(t, base, `"/usr/local/bin/evp api"`, `"/usr/local/bin/evp api --port ${{EVP_PORT}}"`))
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, checkRailwayEnv(c), "EVP_PORT is not a setting evp reads")
	})
}

func TestWorkflowCheckerFails(t *testing.T) {
	base := readFile(t, ciPath)
	gomod := goModVersion(t)
	cases := []struct {
		name, old, new, want string
	}{
		{"no make test", "run: make test", "run: go test ./...", `no job runs "make test"`},
		{"no redis", "      redis:\n        image: redis:7.4-alpine", "      cache:\n        image: valkey/valkey:8", "no redis service container"},
		{"services optional", `EVP_REQUIRE_SERVICES: "1"`, `EVP_REQUIRE_SERVICES: "0"`, "EVP_REQUIRE_SERVICES is not 1"},
		{"pushes", "push: false", "push: true", "without pushing"},
		{"no image job", "uses: docker/build-push-action@v6", "uses: docker/bake-action@v5", "no job builds the image"},
		{"no setup-go", "uses: actions/setup-go@v5", "uses: actions/cache@v4", "without actions/setup-go"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, checkWorkflow(mustReplace(t, base, tc.old, tc.new), testCommand, gomod), tc.want)
		})
	}
	t.Run("go version drift", func(t *testing.T) {
		text := mustReplace(t, base, "go-version-file: go.mod", "go-version: \"1.22\"")
		wantProblem(t, checkWorkflow(text, testCommand, gomod), `setup-go installs "1.22"`)
	})
}

func TestCommandCheckerFails(t *testing.T) {
	base := readFile(t, composePath)
	c, err := parseCompose(mustReplace(t, base, `command: ["migrate"]`, `command: ["migrations"]`))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, checkCommands(c.commandUses(), evpCommands(t)), "`evp migrations`")
}
