package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyDirection keeps the core packages free of drivers and
// transports, so that the domain logic stays pure and testable, and keeps
// the binary cgo-free so it runs anywhere as one static file.
func TestDependencyDirection(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	forbidden := []string{
		"modernc.org/sqlite",
		"github.com/jackc/pgx",
		"google.golang.org/grpc",
		"github.com/twmb/franz-go",
	}
	core := []string{
		"github.com/tailgate-sre/tailgate/internal/otlp",
		"github.com/tailgate-sre/tailgate/internal/sampler",
		"github.com/tailgate-sre/tailgate/internal/slo",
		"github.com/tailgate-sre/tailgate/internal/gate",
	}
	for _, pkg := range core {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			if strings.Contains(string(out), "cannot find package") || strings.Contains(string(out), "no required module") {
				continue // the package does not exist yet
			}
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("%s imports %s; core packages must not depend on drivers or transports", pkg, dep)
				}
			}
		}
	}
	// A cgo dependency would fail to build here.
	cmd := exec.Command("go", "build", "-o", os.DevNull, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("the binary must build without cgo: %v\n%s", err, out)
	}
}
