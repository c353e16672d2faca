#!/usr/bin/env bash
# Build a real Pulumi engine from Go modules only (no release downloads):
#   bin/pulumi                        CLI + engine           pkg/v3 v3.274.1
#   bin/pulumi-language-python-exec   exec shim shipped in the sdk/v3 v3.274.1 module zip
#   bin/pulumi-language-python        our own minimal Python language host (langhost/main.go, against sdk/v3 v3.274.1)
#   bin/pulumi-resource-kubernetes    Kubernetes provider    4.25.0 (provider/v4 pseudo-version of tag v4.25.0)
#
# The Python language host is not Pulumi's: that module is refused by the
# module proxy here (403 for every version) and is not part of the sdk/v3 zip.
# Python programs do not need one: they run under this engine through the
# Automation API (pulumi.automation, inline program: the Python SDK serves the
# language runtime itself and the CLI connects with --client). A Python policy
# pack does: the CLI starts it through the host's RunPlugin. langhost/main.go
# serves just that (GetPluginInfo and RunPlugin of packs; everything else is
# Unimplemented). Measured on 2 shared cores with the Go caches warm from the
# CLI: first build 39 s (tidy 3 s, compile and link 36 s), after a source
# change 5 s; 27 MB.
#
# Idempotent: a binary whose wrapper module, flags, Go version (and, for the
# language host, source) are unchanged (a stamp in bin/) is not rebuilt, so a warm run takes a second; FORCE=1
# rebuilds through the warm Go cache (only the link step). Uses the ordinary Go caches.
#
# Usage: build-engine.sh        (E2E_HOME defaults to ~/.cache/modelplane-e2e)
set -euo pipefail

ROOT=${E2E_HOME:-$HOME/.cache/modelplane-e2e}
BIN=$ROOT/bin
mkdir -p "$BIN" "$ROOT/logs"
GOMODCACHE=$(go env GOMODCACHE)

PULUMI_VERSION=v3.274.1
# github.com/pulumi/pulumi-kubernetes/provider/v4 has no semver tags for its
# subdirectory path; the only version the proxy here serves is this pseudo-version,
# which is commit f47bc2d6f199 = tag v4.25.0 of pulumi/pulumi-kubernetes.
K8S_PROVIDER_MOD=v4.0.0-20260115033456-f47bc2d6f199
K8S_VERSION=4.25.0          # what the plugin reports; pin pulumi_kubernetes==4.25.0 to match
K8S_SDK_GO=v4.25.0          # sibling module sdk/v4 of the same release (tag sdk/v4.25.0)

t0=$(date +%s)
step() { printf '[build-engine %4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }
# stamp_of FILE...: what a binary was built from (inputs, flags, Go version)
stamp_of() { { cat "$@"; go version; } | sha256sum | cut -c1-16; }
# up_to_date STAMPFILE STAMP BIN: the binary exists and was built from exactly this
up_to_date() { [ -z "${FORCE:-}" ] && [ -x "$3" ] && [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

# ---------------------------------------------------------------- CLI
CLI=$ROOT/build/cli
mkdir -p "$CLI"
cat > "$CLI/go.mod.in" <<EOF
module modelplane-e2e/engine

go 1.26.6

require (
	github.com/pulumi/pulumi/pkg/v3 $PULUMI_VERSION
	github.com/pulumi/pulumi/sdk/v3 $PULUMI_VERSION
)

// The only non-local replace in pkg/go.mod at $PULUMI_VERSION (the other one,
// sdk/v3 => ../sdk, is covered by requiring sdk/v3 at the same tag).
replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e
EOF
echo "$PULUMI_VERSION" > "$CLI/version.in"
CLI_STAMP=$(stamp_of "$CLI/go.mod.in" "$CLI/version.in")
if up_to_date "$BIN/.stamp-pulumi" "$CLI_STAMP" "$BIN/pulumi" && [ -x "$BIN/pulumi-language-python-exec" ]; then
  step "cli: up to date"
else
  # Rewrite go.mod only when the input changed, so a rebuild does not re-resolve.
  if ! cmp -s "$CLI/go.mod.in" "$CLI/go.mod.in.last" 2>/dev/null || [ ! -f "$CLI/go.sum" ]; then
    cp "$CLI/go.mod.in" "$CLI/go.mod"
  fi
  printf '//go:build tools\n\npackage engine\n\nimport _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"\n' > "$CLI/tools.go"
  step "cli: go mod tidy"
  (cd "$CLI" && go mod tidy) > "$ROOT/logs/build-cli-tidy.log" 2>&1 || { tail -20 "$ROOT/logs/build-cli-tidy.log"; exit 1; }
  cp "$CLI/go.mod.in" "$CLI/go.mod.in.last"

  LDV="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION"
  step "cli: go build pulumi"
  (cd "$CLI" && go build -o "$BIN/pulumi" -ldflags "$LDV" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)

  SDKDIR=$(cd "$CLI" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
  install -m 0755 "$SDKDIR/python/cmd/pulumi-language-python-exec" "$BIN/pulumi-language-python-exec"
  echo "$CLI_STAMP" > "$BIN/.stamp-pulumi"
fi

# ---------------------------------------------------------------- Python language host (policy packs)
# The source is checked in (langhost/main.go); its wrapper module is generated here like the others.
LANGHOST_SRC=$(cd "$(dirname "$0")" && pwd)/langhost
LH=$ROOT/build/langhost
mkdir -p "$LH"
cat > "$LH/go.mod.in" <<EOF
module modelplane-e2e/langhost

go 1.26.6

require github.com/pulumi/pulumi/sdk/v3 $PULUMI_VERSION
EOF
# What GetPluginInfo reports: the contract it was built against, marked as ours.
LH_VERSION=$PULUMI_VERSION+modelplane
echo "$LH_VERSION" > "$LH/version.in"
LH_STAMP=$(stamp_of "$LH/go.mod.in" "$LH/version.in" "$LANGHOST_SRC/main.go")
if up_to_date "$BIN/.stamp-language-python" "$LH_STAMP" "$BIN/pulumi-language-python"; then
  step "python language host: up to date"
else
  if ! cmp -s "$LH/go.mod.in" "$LH/go.mod.in.last" 2>/dev/null || [ ! -f "$LH/go.sum" ]; then
    cp "$LH/go.mod.in" "$LH/go.mod"
  fi
  install -m 0644 "$LANGHOST_SRC/main.go" "$LH/main.go"
  step "python language host: go mod tidy"
  (cd "$LH" && go mod tidy) > "$ROOT/logs/build-langhost-tidy.log" 2>&1 || { tail -20 "$ROOT/logs/build-langhost-tidy.log"; exit 1; }
  cp "$LH/go.mod.in" "$LH/go.mod.in.last"
  step "python language host: go build pulumi-language-python"
  (cd "$LH" && go build -o "$BIN/pulumi-language-python" \
    -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$LH_VERSION" .)
  echo "$LH_STAMP" > "$BIN/.stamp-language-python"
fi

# ---------------------------------------------------------------- Kubernetes provider
K8S=$ROOT/build/k8s
KCMD=$K8S/cmd/pulumi-resource-kubernetes
mkdir -p "$KCMD"
cat > "$K8S/go.mod.in" <<EOF
module modelplane-e2e/kubernetes-provider

go 1.24.7

require github.com/pulumi/pulumi-kubernetes/provider/v4 $K8S_PROVIDER_MOD

// provider/go.mod has replace github.com/pulumi/pulumi-kubernetes/sdk/v4 => ../sdk
// (a sibling directory, not part of the provider's module zip). Use the sdk/v4
// module of the same release instead.
replace github.com/pulumi/pulumi-kubernetes/sdk/v4 => github.com/pulumi/pulumi-kubernetes/sdk/v4 $K8S_SDK_GO
EOF
echo "$K8S_PROVIDER_MOD $K8S_VERSION $K8S_SDK_GO" > "$K8S/version.in"
K8S_STAMP=$(stamp_of "$K8S/go.mod.in" "$K8S/version.in")
if up_to_date "$BIN/.stamp-kubernetes" "$K8S_STAMP" "$BIN/pulumi-resource-kubernetes"; then
  step "k8s: up to date"
else
  if ! cmp -s "$K8S/go.mod.in" "$K8S/go.mod.in.last" 2>/dev/null || [ ! -f "$K8S/go.sum" ]; then
    cp "$K8S/go.mod.in" "$K8S/go.mod"
  fi
  step "k8s: go mod download provider"
  (cd "$K8S" && go mod download "github.com/pulumi/pulumi-kubernetes/provider/v4@$K8S_PROVIDER_MOD")
  PDIR=$GOMODCACHE/github.com/pulumi/pulumi-kubernetes/provider/v4@$K8S_PROVIDER_MOD
  # main.go embeds schema-embed.json and terraform-mapping-embed.json, which are
  # generated (go:generate go run ./generate.go) and therefore absent from the zip.
  # The package is copied into the wrapper module and the files are generated here.
  for f in main.go generate.go schema.json terraform-mapping.json; do
    install -m 0644 "$PDIR/cmd/pulumi-resource-kubernetes/$f" "$KCMD/$f"
  done

  step "k8s: go mod tidy"
  (cd "$K8S" && go mod tidy) > "$ROOT/logs/build-k8s-tidy.log" 2>&1 || { tail -20 "$ROOT/logs/build-k8s-tidy.log"; exit 1; }
  cp "$K8S/go.mod.in" "$K8S/go.mod.in.last"

  if [ ! -s "$KCMD/schema-embed.json" ] || [ ! -s "$KCMD/terraform-mapping-embed.json" ] \
     || [ "$(cat "$KCMD/.embed-version" 2>/dev/null)" != "$K8S_VERSION" ]; then
    step "k8s: generate schema-embed.json (VERSION=$K8S_VERSION)"
    (cd "$KCMD" && VERSION=$K8S_VERSION go run ./generate.go)
    echo "$K8S_VERSION" > "$KCMD/.embed-version"
  fi

  step "k8s: go build pulumi-resource-kubernetes"
  (cd "$K8S" && go build -o "$BIN/pulumi-resource-kubernetes" \
    -ldflags "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$K8S_VERSION" \
    ./cmd/pulumi-resource-kubernetes)
  echo "$K8S_STAMP" > "$BIN/.stamp-kubernetes"
fi

# ---------------------------------------------------------------- YAML language host
# pulumi-language-yaml runs YAML programs: tests/e2e/test_package.py adds a ModelApi through
# modelplane's component package (components/) from one. Its own module graph (pkg/v3 v3.206.0):
# about 150 s cold here, mostly compiling pkg/v3 once more.
YAML_VERSION=v1.25.0
YL=$ROOT/build/yaml
mkdir -p "$YL"
cat > "$YL/go.mod.in" <<EOF
module modelplane-e2e/yaml

go 1.26.6

require github.com/pulumi/pulumi-yaml $YAML_VERSION
EOF
echo "$YAML_VERSION" > "$YL/version.in"
YL_STAMP=$(stamp_of "$YL/go.mod.in" "$YL/version.in")
if up_to_date "$BIN/.stamp-language-yaml" "$YL_STAMP" "$BIN/pulumi-language-yaml"; then
  step "yaml language host: up to date"
else
  if ! cmp -s "$YL/go.mod.in" "$YL/go.mod.in.last" 2>/dev/null || [ ! -f "$YL/go.sum" ]; then
    cp "$YL/go.mod.in" "$YL/go.mod"
  fi
  printf '//go:build tools\n\npackage yaml\n\nimport _ "github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml"\n' > "$YL/tools.go"
  step "yaml language host: go mod tidy"
  (cd "$YL" && go mod tidy) > "$ROOT/logs/build-yaml-tidy.log" 2>&1 || { tail -20 "$ROOT/logs/build-yaml-tidy.log"; exit 1; }
  cp "$YL/go.mod.in" "$YL/go.mod.in.last"
  step "yaml language host: go build pulumi-language-yaml"
  (cd "$YL" && go build -o "$BIN/pulumi-language-yaml" \
    -ldflags "-X github.com/pulumi/pulumi-yaml/pkg/version.Version=$YAML_VERSION" \
    github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml)
  echo "$YL_STAMP" > "$BIN/.stamp-language-yaml"
fi

step "done"
"$BIN/pulumi" version
