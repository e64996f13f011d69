#!/bin/sh
# The loadbalancing check of docs/scale.md, outside CI: builds a Collector
# with the contrib loadbalancing exporter (cold: several minutes on 2
# cores) and tailgate, then runs lbcheck: two tailgates behind the
# Collector, traces of three services sent through it, and every trace
# must reach one tailgate whole.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$(mktemp -d)
(cd "$root" && go build -o "$out/tailgate" ./cmd/tailgate)
(cd "$here" && go build -o "$out/otelcol-lb" . && go build -o "$out/lbcheck" ./lbcheck)
"$out/lbcheck" -tailgate "$out/tailgate" -collector "$out/otelcol-lb" "$@"
