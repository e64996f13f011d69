package export

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

func fileConfig(path string) Config {
	cfg := testConfig("")
	cfg.OTLP = nil
	cfg.File = &FileConfig{Path: path}
	cfg.Queue.MaxBatchSpans = 20
	return cfg
}

// runFile exports requests of the given sizes to path and shuts down,
// returning the names of the spans sent.
func runFile(t *testing.T, cfg Config, gen *spanGen, sizes ...int) ([]string, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	e, err := New(cfg, Settings{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind() != KindFile {
		t.Fatalf("Kind = %q, want file", e.Kind())
	}
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range sizes {
		req, nn := gen.request(t, n)
		names = append(names, nn...)
		if err := e.Export(t.Context(), req, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	return names, reg
}

// readLines parses every line of the file as an OTLP JSON request and
// returns the span names of each line.
func readLines(t *testing.T, path string) [][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Error("file does not end with a newline")
	}
	var lines [][]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalJSON(sc.Bytes()); err != nil {
			t.Fatalf("line %d is not an OTLP JSON request: %v", len(lines)+1, err)
		}
		lines = append(lines, spanNames(req.Traces()))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func TestFileExporter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "kept.jsonl") // parents do not exist
	var gen spanGen
	sent, reg := runFile(t, fileConfig(path), &gen, 10, 10, 5)
	lines := readLines(t, path)
	var got []string
	for _, l := range lines {
		got = append(got, l...)
	}
	if diff := cmp.Diff(sortedCopy(sent), sortedCopy(got)); diff != "" {
		t.Errorf("spans in the file (-want +got):\n%s", diff)
	}
	// Batches of at most 20 spans: 10+10, then 5.
	if len(lines) != 2 {
		t.Errorf("%d lines, want 2", len(lines))
	}
	if diff := cmp.Diff(counts{Sent: 25}, readCounts(t, reg, KindFile)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}

	// A second run appends.
	more, _ := runFile(t, fileConfig(path), &gen, 3)
	lines = readLines(t, path)
	if diff := cmp.Diff(sortedCopy(more), lines[len(lines)-1]); diff != "" {
		t.Errorf("appended line (-want +got):\n%s", diff)
	}
	if len(lines) != 3 {
		t.Errorf("%d lines after the second run, want 3", len(lines))
	}
}

func TestFileExporterUndecodableBatchFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kept.jsonl")
	reg := prometheus.NewRegistry()
	e, err := New(fileConfig(path), Settings{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Field 1 with a length beyond the end: not a protobuf message.
	if err := e.Export(t.Context(), []byte{0x0a, 0x7f, 0x01}, 4); err != nil {
		t.Fatal(err)
	}
	if err := e.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(counts{Failed: 4}, readCounts(t, reg, KindFile)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	if data, _ := os.ReadFile(path); len(data) != 0 {
		t.Errorf("file holds %q, want nothing", data)
	}
}

func TestFileExporterStartFails(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := New(fileConfig(filepath.Join(blocker, "kept.jsonl")), Settings{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(t.Context()); err == nil {
		t.Error("Start with a file as the parent directory succeeded")
	}
	if err := e.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown after a failed Start: %v", err)
	}
}
