#!/usr/bin/env bash
# Makes a local base image for the Vitals image from Debian's packages, for machines
# that can reach a Debian mirror but no container registry: debootstrap's minbase of
# bookworm plus Python 3.11 (python3, python3-venv) and CA certificates, with the
# current security updates, imported into podman. Run with --help for the settings.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/../local source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../local/lib.sh"

BASE_IMAGE=${BASE_IMAGE:-localhost/vitals-base:bookworm}
SUITE=bookworm
# What the Containerfile needs from its base: python3 with venv (ensurepip), the CA
# bundle for pip and for the services' outgoing TLS, useradd (in minbase's passwd).
PACKAGES=python3,python3-venv,ca-certificates

usage() {
  cat <<USAGE
usage: deploy/image/base.sh

Builds $BASE_IMAGE: Debian $SUITE (debootstrap --variant=minbase) with
${PACKAGES//,/, } and the security updates, apt lists and caches removed.
Needs root (debootstrap chroots); installs debootstrap and podman with apt-get if missing.

environment (current value):
  BASE_IMAGE        name of the image made (${BASE_IMAGE})
  DEBIAN_MIRROR     Debian mirror (default: the one apt uses for $SUITE here, else deb.debian.org)
  DEBIAN_SECURITY   security mirror (default: the one apt uses for $SUITE-security here)
USAGE
}

# configured_uri SUITE: the first URI apt's sources on this machine use for SUITE, from
# one-line (sources.list) or deb822 (*.sources) files
configured_uri() {
  local suite=$1 file
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$file" ] || continue
    # deb [options] URI SUITE COMPONENTS...
    sed -e 's/\[[^]]*\]//' "$file" | awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2; exit }'
  done | head -n 1 | grep . && return 0
  for file in /etc/apt/sources.list.d/*.sources; do
    [ -f "$file" ] || continue
    # stanzas separated by blank lines; a stanza that lists SUITE gives its first URI
    awk -v suite="$suite" '
      function check() { if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && uri != "") { print uri; found = 1; exit } }
      /^[ \t]*$/ { check(); types = suites = uri = ""; next }
      /^Types:/ { types = $0; sub(/^Types:[ \t]*/, "", types) }
      /^Suites:/ { suites = $0; sub(/^Suites:[ \t]*/, "", suites) }
      /^URIs:/ { uri = $2 }
      END { if (!found) check() }' "$file"
  done | head -n 1 | grep .
}

case "${1:-}" in
  -h | --help | help) usage; exit 0 ;;
  '') ;;
  *) warn "unknown argument: $1"; usage >&2; exit 2 ;;
esac

[ "$(id -u)" -eq 0 ] || die "base.sh needs root: debootstrap builds the tree in a chroot"
command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap debootstrap "debootstrap is not installed"
command -v podman >/dev/null 2>&1 || apt_install podman podman "podman is not installed"

MIRROR=${DEBIAN_MIRROR:-$(configured_uri "$SUITE" || echo http://deb.debian.org/debian)}
SECURITY=${DEBIAN_SECURITY:-$(configured_uri "$SUITE-security" || echo http://deb.debian.org/debian-security)}

work=$(mktemp -d "${TMPDIR:-/var/tmp}/vitals-base.XXXXXX")
root=$work/root
cleanup() {
  local status=$?
  if mountpoint -q "$root/proc" 2>/dev/null; then umount "$root/proc" || true; fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT INT TERM

started=$SECONDS
say "Bootstrapping Debian $SUITE from $MIRROR into $work ..."
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" \
  >"$work/debootstrap.log" 2>&1; then
  tail -n 30 "$work/debootstrap.log" >&2
  die "debootstrap failed (the lines above are the end of its log)"
fi

# Docs, man pages and translations are not wanted in an image, now or from later
# installs; apt keeps no downloaded packages (as Debian's own container images do).
cat >"$root/etc/dpkg/dpkg.cfg.d/excludes" <<'CFG'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/lintian/*
CFG
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES

# debootstrap takes packages from $SUITE only: bring in the point-release and security
# updates, then drop what the installed documentation left behind.
say "Applying $SUITE-updates and $SUITE-security ..."
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
if ! chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
  'apt-get update -qq && apt-get upgrade -y -qq -o Dpkg::Use-Pty=0' >"$work/upgrade.log" 2>&1; then
  tail -n 30 "$work/upgrade.log" >&2
  die "apt-get upgrade in the new tree failed (the lines above are the end of its log)"
fi
umount "$root/proc"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/apt/* \
  "$root"/var/log/dpkg.log "$root"/var/log/bootstrap.log "$root"/tmp/* \
  "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/usr/share/lintian/*
find "$root/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
# The container runtime provides these; debootstrap's copies would only leak the host's.
: >"$root/etc/resolv.conf"
echo vitals >"$root/etc/hostname"

say "Importing the tree as $BASE_IMAGE ..."
# Without device nodes and the contents of /proc, /sys and /run: the runtime mounts those.
tar --create --numeric-owner --directory "$root" \
  --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' --exclude='./run/*' . \
  | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "debootstrap --variant=minbase $SUITE + ${PACKAGES//,/ } from $MIRROR" \
    - "$BASE_IMAGE" >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$BASE_IMAGE")
say "Made $BASE_IMAGE ($((size / 1024 / 1024)) MiB) in $((SECONDS - started)) s"
