package check

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// repoRoot is the tailgate repository, from deploy/check.
const repoRoot = "../.."

// TestDockerfile parses the Dockerfile with BuildKit's own parser and
// checks what the image promises (no container engine runs here): a
// multi-stage build, a distroless non-root runtime with a numeric user,
// the /data volume and the three ports; then it runs the build stage's go
// build command and checks the binary is static and tells the version.
func TestDockerfile(t *testing.T) {
	f, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ast, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("BuildKit cannot parse the Dockerfile: %v", err)
	}
	stages, _, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		t.Fatalf("BuildKit cannot read the Dockerfile's instructions: %v", err)
	}
	if len(stages) != 2 {
		t.Fatalf("%d stages, want a build stage and a runtime stage", len(stages))
	}
	build, runtime := stages[0], stages[1]
	if !strings.HasPrefix(build.BaseName, "golang:1.26") {
		t.Errorf("build stage from %s, want golang:1.26 (the Go this module builds with)", build.BaseName)
	}
	if runtime.BaseName != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("runtime from %s, want distroless static nonroot", runtime.BaseName)
	}
	var buildCmd string
	for _, c := range build.Commands {
		if r, ok := c.(*instructions.RunCommand); ok && strings.Contains(strings.Join(r.CmdLine, " "), "go build") {
			buildCmd = strings.Join(r.CmdLine, " ")
		}
	}
	var user string
	var volumes, ports []string
	for _, c := range runtime.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.VolumeCommand:
			volumes = append(volumes, c.Volumes...)
		case *instructions.ExposeCommand:
			ports = append(ports, c.Ports...)
		case *instructions.RunCommand:
			t.Errorf("the runtime stage runs %q: it has no shell", strings.Join(c.CmdLine, " "))
		}
	}
	if user != "65532:65532" {
		t.Errorf("USER %q, want the numeric non-root 65532:65532 (runAsNonRoot needs a number)", user)
	}
	if !slices.Equal(volumes, []string{"/data"}) {
		t.Errorf("VOLUME %v, want [/data]", volumes)
	}
	slices.Sort(ports)
	if !slices.Equal(ports, []string{"4317", "4318", "8080"}) {
		t.Errorf("EXPOSE %v, want 4317 4318 8080", ports)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=${VERSION}", "./cmd/tailgate"} {
		if !strings.Contains(buildCmd, want) {
			t.Errorf("build command %q lacks %q", buildCmd, want)
		}
	}
	if testing.Short() {
		return
	}

	// Run that command as the Dockerfile does, from the repository root.
	out := filepath.Join(t.TempDir(), "tailgate")
	cmdLine := strings.ReplaceAll(strings.ReplaceAll(buildCmd, "${VERSION}", "v9.8.7-check"), "/out/tailgate", out)
	cmd := exec.CommandContext(t.Context(), "sh", "-c", cmdLine)
	cmd.Dir = repoRoot
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmdLine, err, b)
	}
	bin, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has an ELF interpreter: it is dynamically linked")
		}
	}
	if libs, _ := bin.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	v, err := exec.CommandContext(t.Context(), out, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(v), "v9.8.7-check") {
		t.Errorf("tailgate version = %q (%v), want the stamped v9.8.7-check", v, err)
	}
}
