package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsConfigBlocksLoad loads every tailgate config block of the docs
// and the README through the real loader, as a user who copies one would.
// A block is a ```yaml fence whose first line is "# tailgate.yaml"; other
// YAML (Kubernetes objects, Collector configs, fragments) is not marked.
func TestDocsConfigBlocksLoad(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../README.md")
	found := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range yamlBlocks(string(data)) {
			if strings.TrimSpace(firstLine(b.text)) != "# tailgate.yaml" {
				continue
			}
			found++
			if _, err := Parse([]byte(b.text)); err != nil {
				t.Errorf("%s:%d: the tailgate.yaml block does not load:\n%v", f, b.line, err)
			}
		}
	}
	// The docs carry more than this many; fewer means the marks were lost.
	if found < 12 {
		t.Errorf("found %d marked tailgate.yaml blocks, want at least 12", found)
	}
}

type block struct {
	line int
	text string
}

// yamlBlocks returns the ```yaml fences of a Markdown text, dedented by
// the fence's own indentation (fences inside list items are indented).
func yamlBlocks(md string) []block {
	var out []block
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimLeft(lines[i], " ")
		if trimmed != "```yaml" {
			continue
		}
		indent := len(lines[i]) - len(trimmed)
		var body []string
		j := i + 1
		for ; j < len(lines) && strings.TrimSpace(lines[j]) != "```"; j++ {
			l := lines[j]
			if len(l) >= indent && strings.TrimSpace(l[:indent]) == "" {
				l = l[indent:]
			}
			body = append(body, l)
		}
		out = append(out, block{line: i + 2, text: strings.Join(body, "\n") + "\n"})
		i = j
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
