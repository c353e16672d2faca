#!/usr/bin/env bash
# Self-signed PKI + kubeconfigs for the local control plane (idempotent: keeps what exists).
set -euo pipefail
ROOT=${E2E_HOME:-$HOME/.cache/modelplane-e2e}
INSTANCE=${E2E_INSTANCE:-$ROOT/cluster}
P=$ROOT/pki
PORT=${APISERVER_PORT:-36443}
mkdir -p "$P" "$INSTANCE"
cd "$P"

[ -f ca.key ] || openssl genrsa -out ca.key 2048 2>/dev/null
[ -f ca.crt ] || openssl req -x509 -new -nodes -key ca.key -sha256 -days 3650 \
  -subj "/CN=realk8s-ca" -out ca.crt

# service-account token signing key pair
[ -f sa.key ] || openssl genrsa -out sa.key 2048 2>/dev/null
[ -f sa.pub ] || openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null

sign() { # name subject ext-file-content
  local n=$1 subj=$2 ext=$3
  [ -f "$n.crt" ] && return 0
  openssl genrsa -out "$n.key" 2048 2>/dev/null
  openssl req -new -key "$n.key" -subj "$subj" -out "$n.csr"
  printf '%s\n' "$ext" > "$n.ext"
  openssl x509 -req -in "$n.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -days 3650 -sha256 -extfile "$n.ext" -out "$n.crt" 2>/dev/null
  rm -f "$n.csr"
}

sign apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"

client_ext="basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
sign admin "/O=system:masters/CN=kubernetes-admin" "$client_ext"
sign controller-manager "/CN=system:kube-controller-manager" "$client_ext"
sign scheduler "/CN=system:kube-scheduler" "$client_ext"
# kwok patches node/pod status, leases, and deletes pods: give it cluster-admin via system:masters
sign kwok "/O=system:masters/CN=kwok-controller" "$client_ext"

kubeconfig() { # name
  local n=$1
  cat > "$INSTANCE/$n.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: realk8s
  cluster:
    certificate-authority: $P/ca.crt
    server: https://127.0.0.1:$PORT
users:
- name: $n
  user:
    client-certificate: $P/$n.crt
    client-key: $P/$n.key
contexts:
- name: realk8s
  context: {cluster: realk8s, user: $n}
current-context: realk8s
EOF
}
for n in admin controller-manager scheduler kwok; do kubeconfig $n; done
echo "pki ok: $P"
