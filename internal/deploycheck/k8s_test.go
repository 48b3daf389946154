package deploycheck

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// k8sObject is one document of a manifest in deploy/k8s.
type k8sObject struct {
	File string
	M    map[string]any
}

func (o k8sObject) Kind() string { return str(o.M, "kind") }
func (o k8sObject) Name() string { return str(o.M, "metadata", "name") }
func (o k8sObject) String() string {
	return fmt.Sprintf("%s %s/%s", o.File, o.Kind(), o.Name())
}

// dig walks nested maps by key and lists by index ("0").
func dig(v any, keys ...string) any {
	for _, k := range keys {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			i := atoi(k)
			if i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func str(v any, keys ...string) string {
	if s, ok := dig(v, keys...).(string); ok {
		return s
	}
	return ""
}

func list(v any, keys ...string) []any {
	l, _ := dig(v, keys...).([]any)
	return l
}

func strMap(v any, keys ...string) map[string]string {
	m := map[string]string{}
	if x, ok := dig(v, keys...).(map[string]any); ok {
		for k, val := range x {
			m[k] = fmt.Sprint(val)
		}
	}
	return m
}

func parseK8s(file, text string) ([]k8sObject, error) {
	dec := yaml.NewDecoder(strings.NewReader(text))
	var objs []k8sObject
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if m != nil {
			objs = append(objs, k8sObject{File: file, M: m})
		}
	}
}

func loadK8s(t testing.TB) []k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(path(k8sDir), "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", k8sDir, err)
	}
	var objs []k8sObject
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		o, err := parseK8s(filepath.Base(f), string(text))
		if err != nil {
			t.Fatalf("%s does not parse: %v", k8sDir, err)
		}
		objs = append(objs, o...)
	}
	return objs
}

func find(objs []k8sObject, kind, name string) *k8sObject {
	for i := range objs {
		if objs[i].Kind() == kind && objs[i].Name() == name {
			return &objs[i]
		}
	}
	return nil
}

// podSpec is the pod template's spec of a Deployment or Job.
func podSpec(o k8sObject) any { return dig(o.M, "spec", "template", "spec") }

// evpContainers are the containers of the workloads (all run the evp image).
func evpContainers(objs []k8sObject) map[string][]any {
	m := map[string][]any{}
	for _, o := range objs {
		if o.Kind() == "Deployment" || o.Kind() == "Job" {
			m[o.String()] = list(podSpec(o), "containers")
		}
	}
	return m
}

// subset reports whether every label of sel is in labels with the same value.
func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// The workloads and what each runs.
var k8sWorkloads = []struct {
	Kind, Name, Command string
	Probes              bool
}{
	{"Deployment", "evp-api", "api", true},
	{"Deployment", "evp-worker", "worker", true},
	{"Job", "evp-migrate", "migrate", false},
}

const (
	k8sConfigMap = "evp-config"
	k8sSecret    = "evp-secrets"
)

// Files in deploy/k8s that kustomization.yaml leaves out on purpose.
var k8sAppliedAlone = []string{"secret.example.yaml", "migrate-job.yaml"}

// checkK8s checks the manifests: workloads with their commands, probes and security context,
// the Service, HPA and PDBs selecting the right pods, ConfigMap and Secret references, and
// kustomization.yaml listing every file.
func checkK8s(objs []k8sObject) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	for _, o := range objs {
		if str(o.M, "apiVersion") == "" || o.Kind() == "" {
			add("%s: a document without apiVersion or kind", o.File)
		}
		if o.Kind() != "Kustomization" && o.Name() == "" {
			add("%s: a %s without metadata.name", o.File, o.Kind())
		}
	}

	cm := find(objs, "ConfigMap", k8sConfigMap)
	secret := find(objs, "Secret", k8sSecret)
	if cm == nil {
		add("no ConfigMap %s", k8sConfigMap)
	}
	if secret == nil {
		add("no Secret %s (template)", k8sSecret)
	}
	port := "3001"
	if cm != nil {
		if p := strMap(cm.M, "data")["PORT"]; p != "" {
			port = p
		}
	}

	podLabels := map[string]map[string]string{}
	for _, w := range k8sWorkloads {
		o := find(objs, w.Kind, w.Name)
		if o == nil {
			add("no %s %s", w.Kind, w.Name)
			continue
		}
		labels := strMap(o.M, "spec", "template", "metadata", "labels")
		podLabels[w.Name] = labels
		if sel := strMap(o.M, "spec", "selector", "matchLabels"); w.Kind == "Deployment" && !subset(sel, labels) {
			add("%s: selector %v does not match the pod labels %v", o, sel, labels)
		}
		spec := podSpec(*o)
		if dig(spec, "securityContext", "runAsNonRoot") != true {
			add("%s: pod securityContext.runAsNonRoot must be true", o)
		}
		containers := list(spec, "containers")
		if len(containers) == 0 {
			add("%s: no containers", o)
		}
		for _, c := range containers {
			cname := str(c, "name")
			if args := list(c, "args"); len(args) == 0 || fmt.Sprint(args[0]) != w.Command {
				add("%s container %s: args %v, want [%s]", o, cname, args, w.Command)
			}
			if dig(c, "securityContext", "allowPrivilegeEscalation") != false {
				add("%s container %s: securityContext.allowPrivilegeEscalation must be false", o, cname)
			}
			if str(c, "resources", "limits", "memory") == "" || str(c, "resources", "requests", "cpu") == "" {
				add("%s container %s: needs a memory limit and a CPU request (the HPA measures against it)", o, cname)
			}
			ports := map[string]string{}
			for _, p := range list(c, "ports") {
				ports[str(p, "name")] = fmt.Sprint(dig(p, "containerPort"))
				if fmt.Sprint(dig(p, "containerPort")) != port {
					add("%s container %s: containerPort %v, but PORT is %s", o, cname, dig(p, "containerPort"), port)
				}
			}
			if w.Probes {
				for probe, want := range map[string]string{"readinessProbe": "/api/ready", "livenessProbe": "/api/live"} {
					got := str(c, probe, "httpGet", "path")
					if got != want {
						add("%s container %s: %s.httpGet.path %q, want %q", o, cname, probe, got, want)
					}
					pp := fmt.Sprint(dig(c, probe, "httpGet", "port"))
					if _, named := ports[pp]; !named && pp != port {
						add("%s container %s: %s port %s is neither a named container port nor PORT %s", o, cname, probe, pp, port)
					}
				}
			}
			refs := map[string]bool{}
			for _, ef := range list(c, "envFrom") {
				if n := str(ef, "configMapRef", "name"); n != "" {
					refs["ConfigMap/"+n] = true
					if find(objs, "ConfigMap", n) == nil {
						add("%s container %s: envFrom ConfigMap %s does not exist", o, cname, n)
					}
				}
				if n := str(ef, "secretRef", "name"); n != "" {
					refs["Secret/"+n] = true
					if find(objs, "Secret", n) == nil {
						add("%s container %s: envFrom Secret %s does not exist", o, cname, n)
					}
				}
			}
			if !refs["ConfigMap/"+k8sConfigMap] || !refs["Secret/"+k8sSecret] {
				add("%s container %s: must take its environment from ConfigMap %s and Secret %s", o, cname, k8sConfigMap, k8sSecret)
			}
		}
	}

	// The Service reaches the API pods, and only them.
	if svc := find(objs, "Service", "evp-api"); svc == nil {
		add("no Service evp-api")
	} else {
		sel := strMap(svc.M, "spec", "selector")
		if !subset(sel, podLabels["evp-api"]) {
			add("%s: selector %v does not select the evp-api pods", svc, sel)
		}
		if subset(sel, podLabels["evp-worker"]) {
			add("%s: selector %v also selects the worker pods", svc, sel)
		}
		api := find(objs, "Deployment", "evp-api")
		for _, p := range list(svc.M, "spec", "ports") {
			tp := fmt.Sprint(dig(p, "targetPort"))
			ok := tp == port
			if api != nil {
				for _, c := range list(podSpec(*api), "containers") {
					for _, cp := range list(c, "ports") {
						ok = ok || str(cp, "name") == tp
					}
				}
			}
			if !ok {
				add("%s: targetPort %s is not a port of the evp-api containers", svc, tp)
			}
		}
	}

	// The HPA scales the API on CPU.
	var hpa *k8sObject
	for i := range objs {
		if objs[i].Kind() == "HorizontalPodAutoscaler" {
			hpa = &objs[i]
		}
	}
	if hpa == nil {
		add("no HorizontalPodAutoscaler")
	} else {
		if str(hpa.M, "spec", "scaleTargetRef", "kind") != "Deployment" || str(hpa.M, "spec", "scaleTargetRef", "name") != "evp-api" {
			add("%s: must scale Deployment evp-api", hpa)
		}
		cpu := false
		for _, m := range list(hpa.M, "spec", "metrics") {
			cpu = cpu || (str(m, "type") == "Resource" && str(m, "resource", "name") == "cpu")
		}
		if !cpu {
			add("%s: no CPU metric", hpa)
		}
		if n, _ := dig(hpa.M, "spec", "minReplicas").(int); n < 2 {
			add("%s: minReplicas %v; keep at least 2 API pods", hpa, dig(hpa.M, "spec", "minReplicas"))
		}
		if api := find(objs, "Deployment", "evp-api"); api != nil && dig(api.M, "spec", "replicas") != nil {
			add("%s: sets replicas, which the HPA owns: every apply would reset it", api)
		}
	}

	// The PDBs protect the API (and the workers).
	pdbFor := map[string]bool{}
	for _, o := range objs {
		if o.Kind() != "PodDisruptionBudget" {
			continue
		}
		sel := strMap(o.M, "spec", "selector", "matchLabels")
		matched := false
		for name, labels := range podLabels {
			if subset(sel, labels) {
				pdbFor[name] = true
				matched = true
			}
		}
		if !matched {
			add("%s: selector %v selects no workload", o, sel)
		}
	}
	if !pdbFor["evp-api"] {
		add("no PodDisruptionBudget for evp-api")
	}

	// ConfigMap and Secret hold evp's settings, each in one place.
	if cm != nil && secret != nil {
		sdata := strMap(secret.M, "stringData")
		for k, v := range strMap(secret.M, "data") {
			sdata[k] = v
		}
		for k := range strMap(cm.M, "data") {
			if _, dup := sdata[k]; dup {
				add("%s is both in ConfigMap %s and Secret %s", k, k8sConfigMap, k8sSecret)
			}
		}
		for k, v := range sdata {
			if !strings.Contains(v, "CHANGE_ME") {
				add("Secret %s: %s has a value that is not a CHANGE_ME placeholder; the file is a template", k8sSecret, k)
			}
		}
		env := strMap(cm.M, "data")
		for k, v := range sdata {
			env[k] = v
		}
		if _, err := loadConfig(env); err != nil {
			add("evp rejects ConfigMap %s with Secret %s: %v", k8sConfigMap, k8sSecret, err)
		}
	}

	// kustomization.yaml lists every manifest but those applied alone.
	var kust *k8sObject
	files := map[string]bool{}
	for i, o := range objs {
		files[o.File] = true
		if o.Kind() == "Kustomization" {
			kust = &objs[i]
		}
	}
	if kust == nil {
		add("no kustomization.yaml")
	} else {
		// One image everywhere: the listed workloads name "evp", which kustomize rewrites;
		// those applied alone name the rewritten image itself.
		var rewritten string
		for _, img := range list(kust.M, "images") {
			if str(img, "name") == "evp" {
				rewritten = str(img, "newName") + ":" + str(img, "newTag")
			}
		}
		for _, o := range objs {
			want := "evp"
			if slices.Contains(k8sAppliedAlone, o.File) {
				want = rewritten
			}
			for _, c := range list(podSpec(o), "containers") {
				if got := str(c, "image"); got != want {
					add("%s container %s: image %q, want %q", o, str(c, "name"), got, want)
				}
			}
		}
		listed := map[string]bool{kust.File: true}
		for _, r := range list(kust.M, "resources") {
			listed[fmt.Sprint(r)] = true
			if !files[fmt.Sprint(r)] {
				add("kustomization.yaml lists %v, which is not a manifest here", r)
			}
		}
		var missing []string
		for f := range files {
			if !listed[f] && !slices.Contains(k8sAppliedAlone, f) {
				missing = append(missing, f)
			}
		}
		sort.Strings(missing)
		for _, f := range missing {
			add("kustomization.yaml does not list %s", f)
		}
		for _, f := range k8sAppliedAlone {
			if listed[f] {
				add("kustomization.yaml lists %s, which is applied on its own", f)
			}
		}
	}
	return problems
}

// checkK8sEnv checks that every variable the manifests give evp is one evp reads.
func checkK8sEnv(objs []k8sObject) []string {
	var problems []string
	for _, o := range objs {
		var names []string
		switch o.Kind() {
		case "ConfigMap":
			for k := range strMap(o.M, "data") {
				names = append(names, k)
			}
		case "Secret":
			for k := range strMap(o.M, "stringData") {
				names = append(names, k)
			}
			for k := range strMap(o.M, "data") {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		problems = append(problems, checkNames(names, nil, o.String())...)
	}
	for where, containers := range evpContainers(objs) {
		for _, c := range containers {
			var names []string
			for _, e := range list(c, "env") {
				names = append(names, str(e, "name"))
			}
			problems = append(problems, checkNames(names, nil, where)...)
		}
	}
	return problems
}

func k8sCommandUses(objs []k8sObject) []commandUse {
	var uses []commandUse
	for where, containers := range evpContainers(objs) {
		for _, c := range containers {
			if args := list(c, "args"); len(args) > 0 {
				uses = append(uses, commandUse{Where: where, Command: fmt.Sprint(args[0])})
			}
		}
	}
	return uses
}

func TestK8s(t *testing.T) {
	objs := loadK8s(t)
	report(t, k8sDir, checkK8s(objs))
}
