package main

import (
	"context"
	"fmt"
	"io"
)

func runCardinality(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "tailgate cardinality: not built yet")
	return exitUsage
}
