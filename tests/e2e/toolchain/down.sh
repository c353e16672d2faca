#!/usr/bin/env bash
# Stop the local control plane by the PIDs up.sh saved (never by name).
#   WIPE=1 ./down.sh   # also delete the etcd data dir
set -uo pipefail
ROOT=${E2E_HOME:-$HOME/.cache/modelplane-e2e}
INSTANCE=${E2E_INSTANCE:-$ROOT/cluster}
RUN=$INSTANCE/run
for n in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
  f=$RUN/$n.pid
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    echo "stopped $n ($pid)"
  fi
  rm -f "$f"
done
[ -n "${WIPE:-}" ] && rm -rf "$INSTANCE/data/etcd" && echo "wiped etcd data"
exit 0
