package units

import (
	"fmt"

	"github.com/goccy/go-yaml/ast"
)

// UnmarshalYAML reads a duration from a YAML scalar; an error names the key
// and the line, as config errors must.
func (d *Duration) UnmarshalYAML(node ast.Node) error {
	return positioned(node, d.UnmarshalText([]byte(scalarText(node))))
}

// UnmarshalYAML reads a byte size from a YAML scalar (an integer or a string
// such as 16MiB); an error names the key and the line.
func (b *Bytes) UnmarshalYAML(node ast.Node) error {
	return positioned(node, b.UnmarshalText([]byte(scalarText(node))))
}

func scalarText(node ast.Node) string {
	if s, ok := node.(*ast.StringNode); ok {
		return s.Value
	}
	return node.String()
}

// positioned prefixes err with the value's position and, for a mapping
// value, its key, in the "[line:column]" form the YAML decoder uses.
func positioned(node ast.Node, err error) error {
	if err == nil {
		return nil
	}
	tk := node.GetToken()
	if tk == nil {
		return err
	}
	key := ""
	// A mapping value's tokens run key, ":", value.
	if prev := tk.Prev; prev != nil && prev.Value == ":" && prev.Prev != nil {
		key = prev.Prev.Value + ": "
	}
	return fmt.Errorf("[%d:%d] %s%w", tk.Position.Line, tk.Position.Column, key, err)
}

// UnmarshalScalar reads a YAML scalar with parse, for a type whose text
// form parse reads; an error names the key and the line.
func UnmarshalScalar(node ast.Node, parse func([]byte) error) error {
	return positioned(node, parse([]byte(scalarText(node))))
}
