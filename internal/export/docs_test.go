package export

import (
	"os"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// TestOperationsDocSnippet loads the persistent queue's config snippet of
// docs/operations.md, as a user would copy it.
func TestOperationsDocSnippet(t *testing.T) {
	data, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "## Kept traces on disk")
	if !ok {
		t.Fatal("docs/operations.md has no section on the persistent export queue")
	}
	_, block, ok := strings.Cut(section, "```yaml\n")
	if !ok {
		t.Fatal("the section has no yaml snippet")
	}
	block, _, _ = strings.Cut(block, "```")
	var doc struct {
		Export Config `yaml:"export"`
	}
	doc.Export = DefaultConfig()
	if err := yaml.UnmarshalWithOptions([]byte(block), &doc, yaml.Strict()); err != nil {
		t.Fatalf("snippet:\n%s\n%v", block, err)
	}
	q := doc.Export.Queue
	if !q.Persistent || q.MaxBytes != units.Bytes(1<<30) || q.FsyncInterval != units.Duration(1e9) {
		t.Errorf("snippet decodes to %+v, want persistent, 1GiB, 1s", q)
	}
	if err := doc.Export.Validate(); err != nil {
		t.Errorf("snippet is invalid: %v", err)
	}
}
