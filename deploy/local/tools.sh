#!/usr/bin/env bash
# The tools that check the Helm chart, pinned and installed into the project's .tools/:
# helm and kubeconform built from their Go modules, and the Kubernetes JSON schemas
# kubeconform validates against, made from registry packages so that no check needs
# anything but this folder. Run with --help for the commands and settings.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HELM_VERSION=v3.22.0
KUBECONFORM_VERSION=v0.8.0
# The PyPI package that ships the Kubernetes API's JSON schemas, one folder per version.
KUBERNETES_VALIDATE_VERSION=1.37.0
# The Go module whose example/ folder carries the ServiceMonitor and PrometheusRule CRDs.
PROMETHEUS_OPERATOR_VERSION=v0.85.0
# The Kubernetes versions the chart is validated against: the oldest it supports
# (Chart.yaml kubeVersion) and the newest the schema package knows.
KUBERNETES_VERSIONS="1.30.0 1.37.0"

TOOLS_DIR=$(abspath "${VITALS_TOOLS_DIR:-$REPO_ROOT/.tools}")
BIN=$TOOLS_DIR/bin
VENV_DIR=$TOOLS_DIR/venv
SCHEMAS=$TOOLS_DIR/kubernetes-schemas
STAMPS=$TOOLS_DIR/stamps

usage() {
  cat <<USAGE
usage: deploy/local/tools.sh COMMAND

The chart's check tools, in $(rel "$TOOLS_DIR"):
  helm $HELM_VERSION, kubeconform $KUBECONFORM_VERSION (go install, into bin/)
  Kubernetes $KUBERNETES_VERSIONS schemas from the PyPI package kubernetes-validate
  $KUBERNETES_VALIDATE_VERSION, and ServiceMonitor's and PrometheusRule's from prometheus-operator $PROMETHEUS_OPERATOR_VERSION
  (into kubernetes-schemas/, in the layout kubeconform's -schema-location expects)

commands:
  install  install whatever is missing or at another version than pinned here;
           needs Go 1.26+ and python3 with venv, and the Go module proxy and PyPI
  check    exit 0 when everything is installed at the pinned versions, else say
           what is missing and exit 1
  env      print HELM, KUBECONFORM, KUBERNETES_SCHEMAS and KUBERNETES_VERSIONS as
           shell assignments (for eval)
  clean    delete what install put there

environment (current value):
  VITALS_TOOLS_DIR  where the tools go ($TOOLS_DIR)
  GOMODCACHE, GOCACHE, GOPROXY  as for any go command
USAGE
}

# --- stamps: what is installed, so that install does only what is missing ------------

helm_stamp() { echo "helm $HELM_VERSION"; }
kubeconform_stamp() { echo "kubeconform $KUBECONFORM_VERSION"; }
# The schemas depend on the converter below too: a change to it converts them again.
schemas_stamp() {
  echo "kubernetes-validate $KUBERNETES_VALIDATE_VERSION prometheus-operator $PROMETHEUS_OPERATOR_VERSION" \
    "kubernetes $KUBERNETES_VERSIONS converter $(sha256sum <"$REPO_ROOT/deploy/check/kubernetes_schemas.py" | cut -c1-16)"
}

# installed NAME: the stamp of NAME says what is pinned and its files are there
installed() {
  local name=$1 stamp
  stamp=$("${name}_stamp")
  [ "$(cat "$STAMPS/$name" 2>/dev/null)" = "$stamp" ] || return 1
  case $name in
    helm) [ -x "$BIN/helm" ] ;;
    kubeconform) [ -x "$BIN/kubeconform" ] ;;
    schemas)
      local version
      for version in $KUBERNETES_VERSIONS; do
        [ -f "$SCHEMAS/v$version-local-strict/servicemonitor-monitoring-v1.json" ] || return 1
        [ -f "$SCHEMAS/v$version-local-strict/prometheusrule-monitoring-v1.json" ] || return 1
      done
      ;;
  esac
}

mark_installed() { mkdir -p "$STAMPS" && "${1}_stamp" >"$STAMPS/$1"; }

# --- Go tools -------------------------------------------------------------------------

check_go() {
  need go "install Go 1.26 or newer, then run this again"
}

# go_install NAME MODULE@VERSION LDFLAGS: build into a temporary GOBIN, then move the
# binary into bin/ in one step, so an interrupted build never leaves a broken tool.
go_install() {
  local name=$1 target=$2 ldflags=$3 tmp started=$SECONDS
  tmp=$(mktemp -d "$TOOLS_DIR/.gobin.XXXXXX")
  say "Building $target with go install ..."
  # CGO off: static binaries, and no C compiler needed.
  if ! CGO_ENABLED=0 GOBIN=$tmp go install -trimpath -ldflags "$ldflags" "$target"; then
    rm -rf "$tmp"
    die "go install $target failed (the Go module proxy must be reachable)"
  fi
  mkdir -p "$BIN"
  mv -f "$tmp/$name" "$BIN/$name"
  rm -rf "$tmp"
  mark_installed "$name"
  say "Installed $(rel "$BIN/$name") ($((SECONDS - started)) s)"
}

# go_module_dir MODULE@VERSION: download MODULE into the module cache; print its folder
go_module_dir() {
  local json dir
  json=$(go mod download -json "$1") || die "go mod download $1 failed: $json"
  dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$json")
  [ -d "$dir" ] || die "go mod download $1 gave no folder"
  printf '%s\n' "$dir"
}

install_helm() {
  installed helm && return 0
  check_go
  # What helm's own Makefile sets: its version, and the Kubernetes version it assumes
  # for capabilities and deprecation checks (its client-go's minor; 1.20 without it).
  local gomod client_go minor
  gomod=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  [ -f "$gomod" ] || die "go mod download helm.sh/helm/v3@$HELM_VERSION failed"
  client_go=$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$gomod")
  minor=$(cut -d. -f2 <<<"$client_go")
  [[ $minor =~ ^[0-9]+$ ]] || die "no k8s.io/client-go version in helm's go.mod ($gomod)"
  local x="-X helm.sh/helm/v3"
  go_install helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
    "-s -w $x/internal/version.version=$HELM_VERSION $x/internal/version.metadata= \
$x/pkg/lint/rules.k8sVersionMajor=1 $x/pkg/lint/rules.k8sVersionMinor=$minor \
$x/pkg/chartutil.k8sVersionMajor=1 $x/pkg/chartutil.k8sVersionMinor=$minor"
}

install_kubeconform() {
  installed kubeconform && return 0
  check_go
  go_install kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" \
    "-s -w -X main.version=$KUBECONFORM_VERSION"
}

# --- schemas --------------------------------------------------------------------------


install_schemas() {
  installed schemas && return 0
  check_go
  need python3 "install Python 3 (apt-get install -y python3 python3-venv)"
  local started=$SECONDS
  if [ "$("$VENV_DIR/bin/pip" show kubernetes-validate 2>/dev/null | sed -n 's/^Version: //p')" \
    != "$KUBERNETES_VALIDATE_VERSION" ]; then
    say "Installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION from PyPI into $(rel "$VENV_DIR") ..."
    rm -rf "$VENV_DIR"
    python3 -m venv "$VENV_DIR" || die "python3 -m venv failed (apt-get install -y python3-venv)"
    "$VENV_DIR/bin/pip" install --quiet --disable-pip-version-check \
      "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
      || die "pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION failed"
  fi
  local operator crd crds=()
  operator=$(go_module_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")
  for crd in servicemonitors prometheusrules; do
    crd=$operator/example/prometheus-operator-crd/monitoring.coreos.com_$crd.yaml
    [ -f "$crd" ] || die "prometheus-operator $PROMETHEUS_OPERATOR_VERSION has no $(rel "$crd")"
    crds+=("$crd")
  done
  say "Writing the Kubernetes $KUBERNETES_VERSIONS, ServiceMonitor and PrometheusRule schemas into $(rel "$SCHEMAS") ..."
  local tmp=$SCHEMAS.tmp.$$
  "$VENV_DIR/bin/python" "$REPO_ROOT/deploy/check/kubernetes_schemas.py" "$tmp" "$KUBERNETES_VERSIONS" "${crds[@]}" \
    || { rm -rf "$tmp"; die "could not write the schemas"; }
  rm -rf "$SCHEMAS"
  mv "$tmp" "$SCHEMAS"
  mark_installed schemas
  say "Wrote the schemas ($((SECONDS - started)) s)"
}

# --- commands -------------------------------------------------------------------------

install() {
  mkdir -p "$TOOLS_DIR"
  # One install at a time: two at once would build into the same folders.
  local lock_fd
  exec {lock_fd}>>"$TOOLS_DIR/.install.lock"
  if ! flock -n "$lock_fd"; then
    warn "waiting for another deploy/local/tools.sh install to finish ..."
    flock -w 900 "$lock_fd" || die "another install holds $(rel "$TOOLS_DIR")/.install.lock"
  fi
  local started=$SECONDS
  install_helm
  install_kubeconform
  install_schemas
  say "Chart tools ready in $(rel "$TOOLS_DIR") ($((SECONDS - started)) s): helm $HELM_VERSION," \
    "kubeconform $KUBECONFORM_VERSION, schemas for Kubernetes $KUBERNETES_VERSIONS"
}

check() {
  local name missing=()
  for name in helm kubeconform schemas; do
    installed "$name" || missing+=("$name")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    warn "not installed at the pinned versions: ${missing[*]}; run: deploy/local/tools.sh install"
    return 1
  fi
}

clean() {
  rm -rf "$BIN/helm" "$BIN/kubeconform" "$VENV_DIR" "$SCHEMAS" "$STAMPS" "$TOOLS_DIR"/.gobin.*
  say "Deleted the chart tools from $(rel "$TOOLS_DIR")"
}

env_() {
  printf 'HELM=%q\nKUBECONFORM=%q\nKUBERNETES_SCHEMAS=%q\nKUBERNETES_VERSIONS=%q\n' \
    "$BIN/helm" "$BIN/kubeconform" "$SCHEMAS" "$KUBERNETES_VERSIONS"
}

case "${1:-}" in
  install) install ;;
  check) check ;;
  env) env_ ;;
  clean) clean ;;
  -h | --help | help) usage ;;
  '') usage >&2; exit 2 ;;
  *) warn "unknown command: $1"; usage >&2; exit 2 ;;
esac
