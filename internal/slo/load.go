package slo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// LoadFiles reads SLO specs from files and directories (every *.yaml and
// *.yml inside, recursively, in name order). A file holds, in each YAML
// document, either tailgate's own format (a top-level slos: list, as in the
// config file, a list of specs, or one spec) or OpenSLO v1 documents
// (kind: SLO, with kind: SLI documents its indicatorRef names; other kinds
// are skipped). The specs are validated together; errors name the file,
// line and field.
func LoadFiles(paths ...string) ([]Spec, []Warning, error) {
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("read SLO files: %w", err)
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("read SLO directory %q: %w", p, err)
		}
	}
	l := &loader{slis: map[string]*osloDoc{}}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("read SLO file: %w", err)
		}
		l.file(f, src)
	}
	l.resolveOpenSLO()
	if len(l.errs) > 0 {
		return nil, l.warns, errors.Join(l.errs...)
	}
	specs := make([]Spec, len(l.specs))
	for i := range l.specs {
		specs[i] = l.specs[i].spec
	}
	warns, err := ValidateSpecs(specs)
	for i := range warns {
		if w := &warns[i]; w.Source == "" || strings.Contains(w.Field, "slos[") {
			idx, path := splitFieldPath(w.Field)
			if idx >= 0 && idx < len(l.specs) {
				w.Source = l.specs[idx].locate(path)
				w.Field = path
			}
		}
	}
	warns = append(l.warns, warns...)
	if err != nil {
		var out []error
		for _, e := range unjoin(err) {
			var fe *FieldError
			if errors.As(e, &fe) && fe.Index < len(l.specs) {
				fe.Source = l.specs[fe.Index].locate(fe.Path)
				fe.SLO = specs[fe.Index].Name
			}
			out = append(out, e)
		}
		return nil, warns, errors.Join(out...)
	}
	return specs, warns, nil
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

var fieldPathRE = regexp.MustCompile(`^slos\[(\d+)\]\.?(.*)$`)

func splitFieldPath(f string) (int, string) {
	m := fieldPathRE.FindStringSubmatch(f)
	if m == nil {
		return -1, f
	}
	i, _ := strconv.Atoi(m[1])
	return i, m[2]
}

// loaded is a spec with what locates its fields in its file.
type loaded struct {
	spec Spec
	file string
	node ast.Node // the spec's mapping (own format) or the SLO document
	// paths maps own-format paths to the document's paths (OpenSLO).
	paths func(string) string
}

// locate returns "file:line" of a field path of the spec, or of the spec
// itself when the field is absent.
func (l *loaded) locate(path string) string {
	if l.paths != nil {
		path = l.paths(path)
	}
	n := l.node
	var key ast.Node
	for path != "" && n != nil {
		next, k := lookup(n, &path)
		if next == nil {
			break
		}
		n, key = next, k
	}
	if key != nil {
		n = key // a key's line reads better than its value's
	}
	if n == nil || n.GetToken() == nil {
		return l.file
	}
	return fmt.Sprintf("%s:%d", l.file, n.GetToken().Position.Line)
}

// lookup consumes the first component of path ("key", "key[3]" or "[3]")
// from node n and returns its value and, for a key, the key's node.
func lookup(n ast.Node, path *string) (value, key ast.Node) {
	p := strings.TrimPrefix(*path, ".")
	if strings.HasPrefix(p, "[") {
		end := strings.IndexByte(p, ']')
		if end < 0 {
			*path = ""
			return nil, nil
		}
		i, err := strconv.Atoi(p[1:end])
		*path = p[end+1:]
		seq, ok := unwrap(n).(*ast.SequenceNode)
		if err != nil || !ok || i < 0 || i >= len(seq.Values) {
			return nil, nil
		}
		return seq.Values[i], nil
	}
	end := strings.IndexAny(p, ".[")
	if end < 0 {
		end = len(p)
	}
	name := p[:end]
	*path = p[end:]
	for _, mv := range mappingValues(n) {
		if mv.Key != nil && mv.Key.GetToken() != nil && mv.Key.GetToken().Value == name {
			return mv.Value, mv.Key
		}
	}
	// Filter keys such as http.route contain dots: try the whole rest.
	for _, mv := range mappingValues(n) {
		if mv.Key != nil && mv.Key.GetToken() != nil && strings.HasPrefix(p, mv.Key.GetToken().Value) {
			*path = ""
			return mv.Value, mv.Key
		}
	}
	return nil, nil
}

func unwrap(n ast.Node) ast.Node {
	for {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		case *ast.DocumentNode:
			n = v.Body
		default:
			return n
		}
	}
}

func mappingValues(n ast.Node) []*ast.MappingValueNode {
	switch v := unwrap(n).(type) {
	case *ast.MappingNode:
		return v.Values
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{v}
	}
	return nil
}

func mapValue(n ast.Node, key string) ast.Node {
	for _, mv := range mappingValues(n) {
		if mv.Key != nil && mv.Key.GetToken() != nil && mv.Key.GetToken().Value == key {
			return mv.Value
		}
	}
	return nil
}

func lineOf(file string, n ast.Node) string {
	if n == nil || n.GetToken() == nil {
		return file
	}
	return fmt.Sprintf("%s:%d", file, n.GetToken().Position.Line)
}

// loader accumulates the specs, errors and warnings of several files.
type loader struct {
	specs []loaded
	slos  []*osloDoc // OpenSLO SLO documents, converted after all files
	slis  map[string]*osloDoc
	errs  []error
	warns []Warning
}

var yamlPosRE = regexp.MustCompile(`^\[(\d+):(\d+)\] `)

// yamlError rewrites a go-yaml error "[3:5] msg" as "file:3:5: msg".
func yamlError(file string, err error) error {
	msg := err.Error()
	if m := yamlPosRE.FindStringSubmatch(msg); m != nil {
		first, _, _ := strings.Cut(msg[len(m[0]):], "\n")
		return fmt.Errorf("%s:%s:%s: %s", file, m[1], m[2], first)
	}
	first, _, _ := strings.Cut(msg, "\n")
	return fmt.Errorf("%s: %s", file, first)
}

func (l *loader) file(name string, src []byte) {
	f, err := parser.ParseBytes(src, 0)
	if err != nil {
		l.errs = append(l.errs, yamlError(name, err))
		return
	}
	for _, doc := range f.Docs {
		body := unwrap(doc)
		if body == nil {
			continue
		}
		if _, ok := body.(*ast.NullNode); ok {
			continue
		}
		switch {
		case mapValue(body, "apiVersion") != nil:
			l.openSLODoc(name, body)
		case mapValue(body, "slos") != nil:
			l.ownList(name, mapValue(body, "slos"))
		case mapValue(body, "name") != nil:
			l.ownSpec(name, body)
		default:
			if _, ok := body.(*ast.SequenceNode); ok {
				l.ownList(name, body)
				continue
			}
			l.errs = append(l.errs, fmt.Errorf("%s: neither an SLO list (slos:), an SLO spec nor an OpenSLO document", lineOf(name, body)))
		}
	}
}

func (l *loader) ownList(file string, n ast.Node) {
	seq, ok := unwrap(n).(*ast.SequenceNode)
	if !ok {
		if _, null := unwrap(n).(*ast.NullNode); null {
			return
		}
		l.errs = append(l.errs, fmt.Errorf("%s: slos: must be a list of SLO specs", lineOf(file, n)))
		return
	}
	for _, item := range seq.Values {
		l.ownSpec(file, item)
	}
}

func (l *loader) ownSpec(file string, n ast.Node) {
	var s Spec
	if err := yaml.NodeToValue(n, &s, yaml.Strict()); err != nil {
		l.errs = append(l.errs, yamlError(file, err))
		return
	}
	s.Source = lineOf(file, n)
	l.specs = append(l.specs, loaded{spec: s, file: file, node: n})
}
