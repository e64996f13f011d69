#!/bin/sh
# Builds the Collector of this directory (cold: ~5-12 minutes on 2 cores)
# and runs both end-to-end benchmarks and the grpc-go floor, three
# iterations each, from the tailgate module root. Extra arguments go to `go test`.
# See docs/benchmarks.md.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
(cd "$here" && go build -o otelcol-bench .)
cd "$root"
go test -run '^$' -bench 'BenchmarkE2E$|BenchmarkCollector$|BenchmarkGRPCFloor$' -benchtime 3x -timeout 30m "$@" ./bench/
