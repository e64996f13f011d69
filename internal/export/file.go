package export

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// fileClient appends batches to a file as OTLP JSON, one
// ExportTraceServiceRequest per line (the OpenTelemetry Collector's file
// exporter format, readable by its otlpjsonfile receiver).
type fileClient struct {
	path string
	f    *os.File
}

func (c *fileClient) start(context.Context) error {
	if dir := filepath.Dir(c.path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create directory of export file: %w", err)
		}
	}
	f, err := os.OpenFile(c.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("open export file: %w", err)
	}
	c.f = f
	return nil
}

func (c *fileClient) send(_ context.Context, b *batch) (partialSuccess, error) {
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(b.bytes()); err != nil {
		return partialSuccess{}, permanent(fmt.Errorf("decode batch for the export file: %w", err))
	}
	line, err := req.MarshalJSON()
	if err != nil {
		return partialSuccess{}, permanent(fmt.Errorf("encode batch as OTLP JSON: %w", err))
	}
	line = append(line, '\n')
	// One write per line: with O_APPEND a reader never sees half a line
	// from another writer, and a short write is reported.
	if _, err := c.f.Write(line); err != nil {
		return partialSuccess{}, permanent(fmt.Errorf("write export file: %w", err))
	}
	return partialSuccess{}, nil
}

func (c *fileClient) shutdown(context.Context) error {
	if c.f == nil {
		return nil
	}
	err := errors.Join(c.f.Sync(), c.f.Close())
	c.f = nil
	if err != nil {
		return fmt.Errorf("close export file: %w", err)
	}
	return nil
}
