#!/usr/bin/env bash
# promtool, Prometheus' checker of rule files and metrics, for the deploy/prometheus tests.
#
# Only the binary is taken, from Debian's prometheus package (apt-get download, then
# dpkg-deb extracts usr/bin/promtool into .cache/promtool/). Installing the package
# instead would start a Prometheus server under systemd, create a system user, and pull
# a dozen JavaScript packages and the node exporter, none of which a check needs; the
# binary alone is self-contained (Go, linked against libc only).
#
#   deploy/local/promtool.sh install   extract it unless one is found (idempotent)
#   deploy/local/promtool.sh path      print the promtool the tests use, or fail
#
# Found in this order: $VITALS_PROMTOOL, .cache/promtool/promtool, promtool on PATH.
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
. "$(dirname "$0")/lib.sh"

TOOL_DIR=$CACHE_DIR/promtool
TOOL=$TOOL_DIR/promtool

find_promtool() {
  PROMTOOL=$(first_executable "${VITALS_PROMTOOL:-}" "$TOOL" "$(command -v promtool || true)")
}

# download_deb DIR: fetch the prometheus .deb of this machine's architecture into DIR
download_deb() {
  local options=()
  # As root, apt hands downloads to its unprivileged _apt user, who cannot write into
  # a private temporary directory; the package is still checked against the signed index.
  [ "$(id -u)" -eq 0 ] && options=(-o APT::Sandbox::User=root)
  if (cd "$1" && apt-get download -qq "${options[@]}" prometheus) 2>/dev/null; then
    return 0
  fi
  # A fresh machine may have no package index yet.
  [ "$(id -u)" -eq 0 ] || die "apt-get download prometheus failed; run: sudo apt-get update"
  say "Updating the package index (apt-get update) ..."
  apt-get update -qq || die "apt-get update failed"
  (cd "$1" && apt-get download -qq "${options[@]}" prometheus) \
    || die "apt-get download prometheus failed"
}

install() {
  if find_promtool; then
    return 0
  fi
  need apt-get "install promtool (Prometheus 2.x) and set VITALS_PROMTOOL to its path"
  need dpkg-deb "install promtool (Prometheus 2.x) and set VITALS_PROMTOOL to its path"
  local work
  work=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now: work is local
  trap "rm -rf '$work'" EXIT
  say "Fetching promtool from Debian's prometheus package ..."
  download_deb "$work"
  dpkg-deb --fsys-tarfile "$work"/prometheus_*.deb | tar -x -C "$work" ./usr/bin/promtool \
    || die "promtool not found in $(basename "$work"/prometheus_*.deb)"
  "$work/usr/bin/promtool" --version >/dev/null 2>&1 || die "the extracted promtool does not run"
  mkdir -p "$TOOL_DIR"
  # Copied beside its place, then renamed: a concurrent run never sees half a binary,
  # and two installs at once both leave a whole one.
  cp "$work/usr/bin/promtool" "$TOOL.$$"
  mv -f "$TOOL.$$" "$TOOL"
  say "Installed $("$TOOL" --version 2>&1 | head -n 1) in $(rel "$TOOL")"
}

case "${1:-}" in
  install) install ;;
  path)
    find_promtool || die "promtool is not installed; run: deploy/local/promtool.sh install"
    say "$PROMTOOL"
    ;;
  *)
    warn "usage: deploy/local/promtool.sh install|path"
    exit 2
    ;;
esac
