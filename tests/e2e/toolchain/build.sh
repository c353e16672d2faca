#!/usr/bin/env bash
# Build (or confirm up to date) the whole e2e toolchain into $E2E_HOME/bin, from Go modules only:
# the Pulumi CLI, our Python language host (for policy packs) and the Kubernetes provider (build-engine.sh), then kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, etcd and kwok (build-cluster.sh).
# Cold: about 17 minutes on 2 cores (engine ~11, control plane ~6); warm: under a second (each binary is stamped with what it was built from).
#   E2E_HOME=DIR build.sh     (default ~/.cache/modelplane-e2e)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${E2E_HOME:-$HOME/.cache/modelplane-e2e}
mkdir -p "$ROOT/logs"
command -v go >/dev/null || { echo "build.sh: go is not installed (https://go.dev/dl); the e2e tier needs it" >&2; exit 1; }
t0=$(date +%s)
"$HERE/build-engine.sh"
t1=$(date +%s)
"$HERE/build-cluster.sh" >"$ROOT/logs/build-cluster.log" 2>&1 || { tail -30 "$ROOT/logs/build-cluster.log"; exit 1; }
grep -E "up to date|: [0-9]+s$" "$ROOT/logs/build-cluster.log" || true
t2=$(date +%s)
echo "e2e toolchain ready in $ROOT/bin: engine $((t1 - t0))s, control plane $((t2 - t1))s, total $((t2 - t0))s"
