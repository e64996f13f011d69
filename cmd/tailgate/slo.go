package main

import (
	"context"
	"fmt"
	"io"
)

func runSLO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "tailgate slo: not built yet")
	return exitUsage
}
