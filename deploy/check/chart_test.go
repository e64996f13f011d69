package check

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/tailgate-sre/tailgate/internal/config"
)

var chartDir = filepath.Join(repoRoot, "deploy", "helm", "tailgate")

// fleetValues is a production install: three instances on PostgreSQL,
// tokens, TLS, and a scrape token.
const fleetValues = `
replicas: 3
postgres: {existingSecret: tailgate-postgres, key: dsn}
tokens:
  - {name: ci, existingSecret: tailgate-tokens, key: ci, scopes: [gate:check]}
  - {name: prometheus, existingSecret: tailgate-tokens, key: prometheus, scopes: [read]}
  - {name: collector, existingSecret: tailgate-tokens, key: collector, scopes: [ingest], services: ["payments"]}
tls: {existingSecret: tailgate-tls}
serviceMonitor: {tokenSecret: {name: tailgate-tokens, key: prometheus}}
config:
  server: {api: "127.0.0.1:9999"}   # the chart's address wins
  slos:
    - {name: checkout-availability, service: checkout, objective: 99.9, window: 30d, sli: {kind: availability}}
`

func values(t *testing.T, y string) map[string]any {
	t.Helper()
	v := map[string]any{}
	if err := yaml.Unmarshal([]byte(y), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestChartLints runs helm lint, strict, with the default values and a
// fleet's.
func TestChartLints(t *testing.T) {
	for name, vals := range map[string]string{"defaults": "", "fleet": fleetValues} {
		l := action.NewLint()
		l.Strict = true
		res := l.Run([]string{chartDir}, values(t, vals))
		for _, m := range res.Messages {
			t.Logf("%s: %s", name, m)
		}
		if len(res.Errors) > 0 {
			t.Errorf("helm lint --strict with the %s values: %v", name, res.Errors)
		}
	}
}

// render is helm template: the chart's manifests, by file, with the
// given values and the API versions the cluster serves besides the
// defaults.
func render(t *testing.T, vals string, apis ...string) map[string][]map[string]any {
	t.Helper()
	ch, err := loader.LoadDir(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	caps := common.DefaultCapabilities.Copy()
	caps.APIVersions = append(slices.Clone(caps.APIVersions), apis...)
	rv, err := util.ToRenderValues(ch, values(t, vals), common.ReleaseOptions{Name: "tailgate", Namespace: "tailgate", IsInstall: true}, caps)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	out := map[string][]map[string]any{}
	for name, text := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		for _, doc := range strings.Split(text, "\n---") {
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				t.Fatalf("%s: %v\n%s", name, err, doc)
			}
			if len(obj) > 0 {
				out[name] = append(out[name], obj)
			}
		}
	}
	return out
}

// strict decodes a rendered object into its Kubernetes type, refusing
// unknown fields, so that a misspelt key fails the build.
func strict(t *testing.T, obj map[string]any, into any) {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	// encoding/json matches names without regard to case, so that
	// readOnlyRootFileSystem would pass: Kubernetes' own strict decoder
	// does not.
	strictErrs, err := sigsjson.UnmarshalStrict(b, into, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		t.Errorf("%s %v: %v", obj["kind"], obj["metadata"], err)
	}
	for _, e := range strictErrs {
		t.Errorf("%s %v: %v", obj["kind"], obj["metadata"], e)
	}
}

// objects renders and strictly decodes every object, by kind.
type objects struct {
	sts      appsv1.StatefulSet
	cm       corev1.ConfigMap
	services []corev1.Service
	pdb      *policyv1.PodDisruptionBudget
	np       *networkingv1.NetworkPolicy
	sm       *serviceMonitor
	rule     *prometheusRule
	kinds    []string
}

func renderObjects(t *testing.T, vals string, apis ...string) objects {
	t.Helper()
	var o objects
	for _, objs := range render(t, vals, apis...) {
		for _, obj := range objs {
			kind := fmt.Sprint(obj["kind"])
			o.kinds = append(o.kinds, kind)
			switch kind {
			case "StatefulSet":
				strict(t, obj, &o.sts)
			case "ConfigMap":
				strict(t, obj, &o.cm)
			case "Service":
				var s corev1.Service
				strict(t, obj, &s)
				o.services = append(o.services, s)
			case "PodDisruptionBudget":
				o.pdb = &policyv1.PodDisruptionBudget{}
				strict(t, obj, o.pdb)
			case "NetworkPolicy":
				o.np = &networkingv1.NetworkPolicy{}
				strict(t, obj, o.np)
			case "ServiceMonitor":
				o.sm = &serviceMonitor{}
				strict(t, obj, o.sm)
			case "PrometheusRule":
				o.rule = &prometheusRule{}
				strict(t, obj, o.rule)
			default:
				t.Errorf("unexpected kind %s", kind)
			}
		}
	}
	sort.Strings(o.kinds)
	return o
}

func TestChartDefaults(t *testing.T) {
	o := renderObjects(t, "")
	if want := []string{"ConfigMap", "NetworkPolicy", "Service", "Service", "StatefulSet"}; !slices.Equal(o.kinds, want) {
		t.Errorf("kinds %v, want %v (no PDB for one replica, no Prometheus Operator objects without its API)", o.kinds, want)
	}
	pod := o.sts.Spec.Template.Spec
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken is not false")
	}
	if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v", psc)
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("container security context %+v", sc)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes: liveness %+v, readiness %+v", c.LivenessProbe, c.ReadinessProbe)
	}
	if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
		t.Error("no memory limit: server.memory_limit auto has nothing to follow")
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || *g != 45 {
		t.Errorf("terminationGracePeriodSeconds %v, want shutdown_timeout (30s) + 15", g)
	}
	if len(o.sts.Spec.VolumeClaimTemplates) != 1 || o.sts.Spec.VolumeClaimTemplates[0].Name != "data" {
		t.Errorf("volume claims %+v, want one for /data", o.sts.Spec.VolumeClaimTemplates)
	}
	if o.sts.Spec.Template.Annotations["checksum/config"] == "" {
		t.Error("no config checksum annotation: a config change would not roll the pods")
	}
	for _, s := range o.services {
		for _, p := range s.Spec.Ports {
			if !strings.HasPrefix(p.Name, "grpc-") && !strings.HasPrefix(p.Name, "http-") {
				t.Errorf("service %s port %s is not named for protocol detection", s.Name, p.Name)
			}
		}
	}
	// The ConfigMap's tailgate.yaml loads in tailgate itself, listening
	// inside the pod and keeping state on the volume.
	cfg, err := config.Parse([]byte(o.cm.Data["tailgate.yaml"]))
	if err != nil {
		t.Fatalf("the chart's tailgate.yaml does not load: %v\n%s", err, o.cm.Data["tailgate.yaml"])
	}
	if cfg.Server.API != "0.0.0.0:8080" || cfg.Ingest.OTLPGRPC != "0.0.0.0:4317" || cfg.Ingest.OTLPHTTP != "0.0.0.0:4318" || cfg.Storage.Path != "/data" {
		t.Errorf("config: api %s, otlp %s %s, storage %s", cfg.Server.API, cfg.Ingest.OTLPGRPC, cfg.Ingest.OTLPHTTP, cfg.Storage.Path)
	}
	if cfg.Server.ShutdownTimeout.Std().Seconds() != 30 {
		t.Errorf("shutdown_timeout %s, want 30s", cfg.Server.ShutdownTimeout)
	}
	// Default deny: both directions are policed, DNS is allowed out.
	if o.np == nil || !slices.Equal(o.np.Spec.PolicyTypes, []networkingv1.PolicyType{"Ingress", "Egress"}) || len(o.np.Spec.Egress) == 0 {
		t.Errorf("network policy %+v", o.np)
	}
}

func TestChartFleet(t *testing.T) {
	o := renderObjects(t, fleetValues, "monitoring.coreos.com/v1")
	if o.pdb == nil || o.pdb.Spec.MaxUnavailable == nil || o.pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget %+v, want maxUnavailable 1 for 3 replicas", o.pdb)
	}
	if o.sts.Spec.Replicas == nil || *o.sts.Spec.Replicas != 3 {
		t.Errorf("replicas %v", o.sts.Spec.Replicas)
	}
	// Every instance keeps its own volume, also on PostgreSQL.
	if len(o.sts.Spec.VolumeClaimTemplates) != 1 {
		t.Error("no volume claim with postgres: the write-ahead log and the export queue need one")
	}
	_, err := config.Parse([]byte(o.cm.Data["tailgate.yaml"]))
	if err == nil {
		t.Fatal("the fleet config loaded without its secret files; want the missing postgres_file named")
	}
	if !strings.Contains(err.Error(), "/etc/tailgate/postgres/dsn") {
		t.Errorf("loading the fleet config outside the pod: %v, want it to name the mounted DSN file", err)
	}
	// Secrets reach the pod as files, never in the ConfigMap.
	text := o.cm.Data["tailgate.yaml"]
	for _, want := range []string{"postgres_file: /etc/tailgate/postgres/dsn", "file: /etc/tailgate/tokens/ci", "cert_file: /etc/tailgate/tls/tls.crt", "api: 0.0.0.0:8080"} {
		if !strings.Contains(text, want) {
			t.Errorf("tailgate.yaml lacks %q:\n%s", want, text)
		}
	}
	mounts := map[string]string{}
	for _, m := range o.sts.Spec.Template.Spec.Containers[0].VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	for name, path := range map[string]string{"postgres": "/etc/tailgate/postgres", "tokens": "/etc/tailgate/tokens", "tls": "/etc/tailgate/tls"} {
		if mounts[name] != path {
			t.Errorf("mount %s at %q, want %s", name, mounts[name], path)
		}
	}
	if p := o.sts.Spec.Template.Spec.Containers[0].ReadinessProbe; p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
		t.Errorf("readiness probe scheme %s with TLS, want HTTPS", p.HTTPGet.Scheme)
	}
	// The cluster serves the Prometheus Operator API: its objects render.
	if o.sm == nil || o.rule == nil {
		t.Fatalf("ServiceMonitor %v, PrometheusRule %v: want both with monitoring.coreos.com/v1", o.sm != nil, o.rule != nil)
	}
	ep := o.sm.Spec.Endpoints[0]
	if ep.Port != "http-api" || ep.Path != "/metrics" || ep.Scheme != "https" || ep.Authorization == nil || ep.Authorization.Credentials.Key != "prometheus" {
		t.Errorf("ServiceMonitor endpoint %+v", ep)
	}
	alerts := map[string]bool{}
	for _, r := range o.rule.Spec.Groups[0].Rules {
		alerts[r.Alert] = true
	}
	for _, want := range []string{"TailgateKeptSpansRefused", "TailgateIngestBackpressure", "TailgateStressRelief", "TailgateExportQueueFilling", "TailgateSpansAbandonedAtShutdown", "TailgateSLOEvaluationSlow"} {
		if !alerts[want] {
			t.Errorf("PrometheusRule lacks %s", want)
		}
	}
}

// TestChartConfigChangeRollsPods checks the checksum annotation follows
// the config.
func TestChartConfigChangeRollsPods(t *testing.T) {
	a := renderObjects(t, "").sts.Spec.Template.Annotations["checksum/config"]
	b := renderObjects(t, "config: {log: {level: debug}}").sts.Spec.Template.Annotations["checksum/config"]
	if a == "" || a == b {
		t.Errorf("checksum %q before and %q after a config change; want them to differ", a, b)
	}
}

// serviceMonitor and prometheusRule are the fields of the Prometheus
// Operator's monitoring.coreos.com/v1 types that the chart uses, as the
// operator's API reference names them.
type serviceMonitor struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata"`
	Spec       struct {
		Selector  map[string]any `json:"selector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			Scheme        string `json:"scheme"`
			Authorization *struct {
				Type        string `json:"type"`
				Credentials struct {
					Name string `json:"name"`
					Key  string `json:"key"`
				} `json:"credentials"`
			} `json:"authorization"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type prometheusRule struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata"`
	Spec       struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}
