package check

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestArgoCDPreSync decodes deploy/argocd/presync-job.yaml strictly into
// the Kubernetes types and checks it against Argo CD's hook rules: a
// PreSync hook whose delete policy BeforeHookCreation finds the previous
// run by name (so the Job has a fixed name, not generateName), a deny
// that is not retried inside the Job, and a change class read from the
// ConfigMap committed with the change (Kubernetes expands $(VAR) in args
// from the container's env).
func TestArgoCDPreSync(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "argocd", "presync-job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var job batchv1.Job
	var cm corev1.ConfigMap
	for _, doc := range strings.Split(string(b), "\n---") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatal(err)
		}
		switch obj["kind"] {
		case "Job":
			strict(t, obj, &job)
		case "ConfigMap":
			strict(t, obj, &cm)
		default:
			t.Errorf("unexpected kind %v", obj["kind"])
		}
	}
	ann := job.Annotations
	if ann["argocd.argoproj.io/hook"] != "PreSync" || ann["argocd.argoproj.io/hook-delete-policy"] != "BeforeHookCreation" {
		t.Errorf("hook annotations %v", ann)
	}
	if job.Name == "" || job.GenerateName != "" {
		t.Errorf("name %q, generateName %q: BeforeHookCreation needs a fixed name", job.Name, job.GenerateName)
	}
	if job.Spec.BackoffLimit == nil || *job.Spec.BackoffLimit != 0 {
		t.Errorf("backoffLimit %v, want 0: a deny is an answer", job.Spec.BackoffLimit)
	}
	c := job.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--change=$(CHANGE_CLASS)") {
		t.Errorf("args %v: the change class is not the ConfigMap's", c.Args)
	}
	var fromCM bool
	for _, e := range c.Env {
		if e.Name == "CHANGE_CLASS" && e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil &&
			e.ValueFrom.ConfigMapKeyRef.Name == cm.Name && e.ValueFrom.ConfigMapKeyRef.Key == "change_class" {
			fromCM = true
		}
	}
	if !fromCM {
		t.Errorf("CHANGE_CLASS does not come from ConfigMap %s's change_class: %+v", cm.Name, c.Env)
	}
	if cm.Data["change_class"] != "feature" {
		t.Errorf("the committed change class is %q, want feature by default", cm.Data["change_class"])
	}
	if strings.HasSuffix(c.Image, ":latest") {
		t.Errorf("image %s: pin a version", c.Image)
	}
}
