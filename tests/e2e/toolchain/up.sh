#!/usr/bin/env bash
# Start a real Kubernetes control plane on 127.0.0.1 (no kubelets; kwok fakes nodes/pods):
#   etcd -> kube-apiserver -> kube-controller-manager, kube-scheduler, kwok
# Waits until /readyz is ok, then exits 0. PIDs in run/*.pid, logs in logs/*.log.
#
#   EMULATE=1.33 ./up.sh    # run the 1.35 binaries with --emulated-version=1.33
#   FRESH=1 ./up.sh         # wipe etcd data first
#   E2E_INSTANCE=DIR        # state of this control plane (default $E2E_HOME/cluster); with other
#                           # *_PORT values, two control planes can run side by side
set -euo pipefail
ROOT=${E2E_HOME:-$HOME/.cache/modelplane-e2e}
BIN=$ROOT/bin
INSTANCE=${E2E_INSTANCE:-$ROOT/cluster}
RUN=$INSTANCE/run
LOG=$INSTANCE/logs
DATA=$INSTANCE/data
ETCD_PORT=${ETCD_PORT:-32379}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-32380}
APISERVER_PORT=${APISERVER_PORT:-36443}
KCM_PORT=${KCM_PORT:-30257}
SCHED_PORT=${SCHED_PORT:-30259}
EMULATE=${EMULATE:-}
mkdir -p "$RUN" "$LOG" "$DATA"
export APISERVER_PORT E2E_INSTANCE=$INSTANCE
"$(dirname "$0")/pki.sh" >/dev/null
P=$ROOT/pki
KUBECTL="$BIN/kubectl --kubeconfig $INSTANCE/admin.kubeconfig"

running() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

start() { # name cmd...
  local n=$1; shift
  if running "$n"; then echo "$n already running (pid $(cat "$RUN/$n.pid"))"; return; fi
  echo "starting $n"
  nohup "$@" >"$LOG/$n.log" 2>&1 &
  echo $! >"$RUN/$n.pid"
}

wait_for() { # what seconds cmd...
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 "$secs"); do
    if "$@" >/dev/null 2>&1; then echo "$what ready"; return 0; fi
    sleep 1
  done
  echo "TIMEOUT waiting for $what" >&2; return 1
}

if [ -n "${FRESH:-}" ] && ! running etcd; then rm -rf "$DATA/etcd"; fi

start etcd "$BIN/etcd" \
  --name realk8s --data-dir "$DATA/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "realk8s=http://127.0.0.1:$ETCD_PEER_PORT" \
  --listen-metrics-urls "" \
  --unsafe-no-fsync --quota-backend-bytes 2147483648 --log-level warn
wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

emu=()
[ -n "$EMULATE" ] && emu=(--emulated-version="$EMULATE")

start kube-apiserver "$BIN/kube-apiserver" "${emu[@]}" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
  --tls-cert-file "$P/apiserver.crt" --tls-private-key-file "$P/apiserver.key" \
  --client-ca-file "$P/ca.crt" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$P/sa.pub" --service-account-signing-key-file "$P/sa.key" \
  --api-audiences https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range 10.96.0.0/16 \
  --authorization-mode Node,RBAC \
  --endpoint-reconciler-type none \
  --allow-privileged=false \
  --profiling=false \
  --v=1
wait_for kube-apiserver 120 $KUBECTL get --raw /readyz

start kube-controller-manager "$BIN/kube-controller-manager" "${emu[@]}" \
  --kubeconfig "$INSTANCE/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$INSTANCE/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$INSTANCE/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$KCM_PORT" \
  --service-account-private-key-file "$P/sa.key" --root-ca-file "$P/ca.crt" \
  --cluster-signing-cert-file "$P/ca.crt" --cluster-signing-key-file "$P/ca.key" \
  --use-service-account-credentials=true \
  --service-cluster-ip-range 10.96.0.0/16 \
  --allocate-node-cidrs=false \
  --leader-elect=false \
  --horizontal-pod-autoscaler-sync-period 15s \
  --profiling=false \
  --v=1

# SCHEDULER_CONFIG: a KubeSchedulerConfiguration file (it names the kubeconfig itself).
sched_config=()
[ -n "${SCHEDULER_CONFIG:-}" ] && sched_config=(--config "$SCHEDULER_CONFIG")
start kube-scheduler "$BIN/kube-scheduler" "${emu[@]}" "${sched_config[@]}" \
  --kubeconfig "$INSTANCE/scheduler.kubeconfig" \
  --authentication-kubeconfig "$INSTANCE/scheduler.kubeconfig" \
  --authorization-kubeconfig "$INSTANCE/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" \
  --leader-elect=false \
  --profiling=false \
  --v=1

# kwok: manages only nodes annotated kwok.x-k8s.io/node=fake, with the node
# (initialize + lease heartbeat) and pod (ready/complete/delete) stages from the kwok module.
start kwok "$BIN/kwok" \
  --kubeconfig "$INSTANCE/kwok.kubeconfig" \
  --config "$ROOT/kwok/stages.yaml" \
  --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
  --node-lease-duration-seconds 40 \
  --node-ip 127.0.0.1 \
  --cidr 10.244.0.0/16

wait_for kube-controller-manager 60 curl -sfk "https://127.0.0.1:$KCM_PORT/healthz"
wait_for kube-scheduler 60 curl -sfk "https://127.0.0.1:$SCHED_PORT/healthz"
sleep 2
running kwok || { echo "kwok died:"; tail -20 "$LOG/kwok.log"; exit 1; }
wait_for readyz 60 $KUBECTL get --raw /readyz
echo "control plane up: export KUBECONFIG=$INSTANCE/admin.kubeconfig"
