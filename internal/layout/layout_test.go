package layout

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// maxLines is the most lines a non-test Go file may have.
const maxLines = 800

// sources returns the module's non-test Go files, relative to its root,
// leaving out nested modules (their own go.mod) and hidden directories.
func sources(t *testing.T) (root string, files []string) {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || exists(filepath.Join(path, "go.mod"))) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			rel, _ := filepath.Rel(root, path)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 50 {
		t.Fatalf("found only %d Go files under %s: wrong root?", len(files), root)
	}
	return root, files
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestNoFileOverMaxLines(t *testing.T) {
	root, files := sources(t)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), "\n"); n > maxLines {
			t.Errorf("%s has %d lines, over %d: split it along a seam", f, n, maxLines)
		}
	}
}

// TestWireFormatInOnePlace: only internal/otlp reads or writes protobuf
// fields by number; everything else uses its iterators and encoders.
func TestWireFormatInOnePlace(t *testing.T) {
	const protowire = "google.golang.org/protobuf/encoding/protowire"
	root, files := sources(t)
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasPrefix(f, filepath.Join("internal", "otlp")+string(filepath.Separator)) {
			continue
		}
		af, err := parser.ParseFile(fset, filepath.Join(root, f), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == protowire {
				t.Errorf("%s imports %s: the wire format belongs in internal/otlp", f, protowire)
			}
		}
	}
}
