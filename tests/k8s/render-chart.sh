#!/usr/bin/env bash
# Renders packaging/helm/strata with its default values (or a values file
# given as $1), as `helm template strata packaging/helm/strata -n strata`
# would: tests/k8s/render.go does the templates, python3-yaml (Debian's,
# the one yamllint uses) turns Chart.yaml and the values into JSON for it.
#   tests/k8s/render-chart.sh [VALUES.yaml] > rendered.yaml
set -euo pipefail
cd "$(dirname "$0")/../.."
chart=packaging/helm/strata
values=${1:-$chart/values.yaml}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
to_json='import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), open(sys.argv[2], "w"))'
/usr/bin/python3 -c "$to_json" "$chart/Chart.yaml" "$tmp/chart.json"
/usr/bin/python3 -c "$to_json" "$values" "$tmp/values.json"
export GOCACHE=${GOCACHE:-/tmp/strata-go-cache} GOPATH=${GOPATH:-/tmp/strata-go} GOFLAGS=-mod=mod GOTOOLCHAIN=local
go run tests/k8s/render.go "$chart" "$tmp/chart.json" "$tmp/values.json" strata strata
