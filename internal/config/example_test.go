package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

const examplePath = "../../examples/tailgate.yaml"

// TestExampleIsValidAndMatchesDefaults loads the documented example and
// checks it states the defaults: running with it or without a file must be
// the same.
func TestExampleIsValidAndMatchesDefaults(t *testing.T) {
	cfg, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
	// Lists the example writes out empty where the default is nil.
	cfg.SLOs, cfg.SLOFiles, cfg.Policies, cfg.Auth.Tokens, cfg.Auth.AllowedHosts, cfg.Notify.Webhooks, cfg.Flags = def.SLOs, def.SLOFiles, def.Policies, def.Auth.Tokens, def.Auth.AllowedHosts, def.Notify.Webhooks, def.Flags
	cfg.Oncall.Rotations = def.Oncall.Rotations
	if !reflect.DeepEqual(cfg, def) {
		t.Errorf("examples/tailgate.yaml does not state the defaults:\nexample %+v\ndefault %+v", cfg, def)
	}
}

// TestExampleDocumentsEveryKey walks the config types' yaml tags and
// requires each key to appear in the example, so a new option cannot go
// undocumented.
func TestExampleDocumentsEveryKey(t *testing.T) {
	read := func(path string) string {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	example := read(examplePath)
	// SLO specs, policies and flags have their own references, which the
	// example points to.
	docs := map[string]string{"slos.": read("../../docs/slo.md"), "policies.": read("../../docs/gate.md"), "flags.": read("../../docs/flags.md")}
	seen := map[reflect.Type]bool{}
	var walk func(path string, typ reflect.Type)
	walk = func(path string, typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] || strings.HasPrefix(typ.PkgPath(), "time") {
			return
		}
		seen[typ] = true
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			key := path + tag
			text, where := example, "examples/tailgate.yaml"
			for prefix, doc := range docs {
				if strings.HasPrefix(key, prefix) {
					text, where = doc, "the docs of "+strings.TrimSuffix(prefix, ".")
				}
			}
			// A key is documented as "key:" in YAML or as `key` in a table.
			if !regexp.MustCompile("(?m)((^|[\\s{,#-])" + regexp.QuoteMeta(tag) + ":|[`.]" + regexp.QuoteMeta(tag) + "`)").MatchString(text) {
				t.Errorf("%s does not document %s", where, key)
			}
			walk(key+".", f.Type)
		}
	}
	walk("", reflect.TypeFor[Config]())
}
