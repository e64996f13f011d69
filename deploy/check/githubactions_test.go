package check

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

type workflow struct {
	Permissions map[string]string `json:"permissions"`
	Concurrency struct {
		Group            string `json:"group"`
		CancelInProgress bool   `json:"cancel-in-progress"`
	} `json:"concurrency"`
	Jobs map[string]struct {
		Environment string            `json:"environment"`
		Env         map[string]string `json:"env"`
		Steps       []struct {
			ID   string            `json:"id"`
			Name string            `json:"name"`
			Uses string            `json:"uses"`
			Run  string            `json:"run"`
			Env  map[string]string `json:"env"`
		} `json:"steps"`
	} `json:"jobs"`
}

// TestGitHubActionsWorkflow checks deploy/github-actions/deploy.yml as
// GitHub runs it: least permissions, one deploy at a time, an environment
// for the token, a pinned tailgate; and it runs the gate step's script
// with bash against a stub tailgate answering each exit code, checking the
// step's outputs, annotations and exit status, and that the deploy marker
// records the same change class.
func TestGitHubActionsWorkflow(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "github-actions", "deploy.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var w workflow
	if err := yaml.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	if len(w.Permissions) != 1 || w.Permissions["contents"] != "read" {
		t.Errorf("permissions %v, want contents: read only", w.Permissions)
	}
	if w.Concurrency.Group == "" || w.Concurrency.CancelInProgress {
		t.Errorf("concurrency %+v: want a group that does not cancel a deploy under way", w.Concurrency)
	}
	job, ok := w.Jobs["deploy"]
	if !ok {
		t.Fatal("no deploy job")
	}
	if job.Environment == "" {
		t.Error("no environment: the token should be an environment secret")
	}
	if v := job.Env["TAILGATE_VERSION"]; !strings.HasPrefix(v, "v") || v == "latest" {
		t.Errorf("TAILGATE_VERSION %q: pin a release", v)
	}
	var gateScript, markerScript, markerClass string
	var setupGo, install bool
	for _, s := range job.Steps {
		switch {
		case strings.HasPrefix(s.Uses, "actions/setup-go@"):
			setupGo = true
		case strings.Contains(s.Run, "go install") && strings.Contains(s.Run, "@${TAILGATE_VERSION}"):
			install = true
		case s.ID == "gate":
			gateScript = s.Run
		case strings.Contains(s.Run, "tailgate gate deploy"):
			markerScript, markerClass = s.Run, s.Env["CHANGE_CLASS"]
		}
	}
	if !setupGo || !install {
		t.Errorf("setup-go %v, pinned install %v", setupGo, install)
	}
	if markerClass != "${{ steps.gate.outputs.change_class }}" || !strings.Contains(markerScript, `--change "$CHANGE_CLASS"`) {
		t.Errorf("the deploy marker's change class is %q (%q), want the gate step's", markerClass, markerScript)
	}
	if gateScript == "" || strings.Contains(gateScript, "${{") {
		t.Fatalf("gate script %q: want one, with no ${{ }} expansions in its text", gateScript)
	}

	// Run the gate script as the runner does (bash -e) with a stub tailgate.
	for _, tc := range []struct {
		code     int
		message  string
		class    string
		decision string
		notice   string // annotation
	}{
		{0, "feat: new cart", "feature", "allow", ""},
		{1, "feat: new cart", "feature", "deny", "::error title=Release denied::"},
		{3, "feat: new cart", "feature", "canary", "::warning title=Canary only::"},
		{2, "feat: new cart", "feature", "error", "::error title=Gate unavailable::tailgate gave no answer (exit 2)"},
		{1, "revert: new cart", "rollback", "deny", "::error title=Release denied::tailgate's error-budget policy denies this rollback release"},
	} {
		dir := t.TempDir()
		stub := "#!/bin/sh\necho \"$@\" > " + filepath.Join(dir, "args") + "\nexit " + strconv.Itoa(tc.code) + "\n"
		if err := os.WriteFile(filepath.Join(dir, "tailgate"), []byte(stub), 0o755); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "output")
		cmd := exec.CommandContext(t.Context(), "bash", "-e", "-c", gateScript)
		cmd.Env = []string{"PATH=" + dir + ":/usr/bin:/bin", "GITHUB_OUTPUT=" + out, "GITHUB_SHA=abc123", "SERVICE=checkout",
			"COMMIT_MESSAGE=" + tc.message, "REQUESTED_BY=github/shop#1"}
		stdout, err := cmd.Output()
		if gotFail, wantFail := err != nil, tc.code != 0; gotFail != wantFail {
			t.Errorf("exit %d: the step failed %v, want %v (%v)", tc.code, gotFail, wantFail, err)
		}
		outputs, _ := os.ReadFile(out)
		if want := "change_class=" + tc.class + "\ndecision=" + tc.decision + "\n"; string(outputs) != want {
			t.Errorf("exit %d: outputs %q, want %q", tc.code, outputs, want)
		}
		if tc.notice != "" && !strings.Contains(string(stdout), tc.notice) {
			t.Errorf("exit %d: annotations %q, want %q", tc.code, stdout, tc.notice)
		}
		if tc.notice == "" && strings.Contains(string(stdout), "::") {
			t.Errorf("exit 0 annotated: %q", stdout)
		}
		args, _ := os.ReadFile(filepath.Join(dir, "args"))
		if !strings.Contains(string(args), "gate check --service checkout --change "+tc.class+" --version abc123") {
			t.Errorf("tailgate called with %q", args)
		}
	}
}
