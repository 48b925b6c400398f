#!/usr/bin/env bash
# `make image`: builds the Vitals container image (deploy/image/Containerfile) with
# podman, tagged vitals:<version in pyproject.toml> and vitals:latest. With the default
# base it first makes localhost/vitals-base:bookworm from Debian's packages (base.sh)
# when that image is missing, so no registry is needed. Run with --help for the settings.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/../local source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../local/lib.sh"
cd "$REPO_ROOT"

LOCAL_BASE=localhost/vitals-base:bookworm
IMAGE_NAME=${IMAGE_NAME:-vitals}
IMAGE_BASE=${IMAGE_BASE:-$LOCAL_BASE}
REBUILD_BASE=${REBUILD_BASE:-0}
# RUN steps in a chroot rather than an OCI container: they only run pip, apt and a
# compiler, and the OCI runtime cannot create containers on some hosts (cgroup v1 or
# hybrid hierarchies, nested containers).
export BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}
# A CA bundle for pip inside the build (a TLS-intercepting proxy); passed as a build
# secret, so it is in no layer.
PIP_CA_BUNDLE=${PIP_CA_BUNDLE:-${PIP_CERT:-}}

usage() {
  cat <<USAGE
usage: deploy/image/build.sh

Builds $IMAGE_NAME:<version> and $IMAGE_NAME:latest from deploy/image/Containerfile with
podman (installed with apt-get when missing and run as root). With the default base,
makes $LOCAL_BASE first when it is missing (deploy/image/base.sh, root).

environment (current value):
  IMAGE_NAME         image name ($IMAGE_NAME)
  IMAGE_BASE         base image of both stages ($IMAGE_BASE); e.g.
                     docker.io/library/python:3.11-slim-bookworm where it can be pulled
  REBUILD_BASE       1: make $LOCAL_BASE again (newer security updates) ($REBUILD_BASE)
  BUILDAH_ISOLATION  how RUN steps are isolated ($BUILDAH_ISOLATION)
  PIP_CA_BUNDLE      CA bundle pip trusts inside the build (default: \$PIP_CERT; ${PIP_CA_BUNDLE:-none})

podman's storage driver is its own setting (/etc/containers/storage.conf): driver = "vfs"
where overlay is unavailable, e.g. inside another container.
USAGE
}

case "${1:-}" in
  -h | --help | help) usage; exit 0 ;;
  '') ;;
  *) warn "unknown argument: $1"; usage >&2; exit 2 ;;
esac

command -v podman >/dev/null 2>&1 || apt_install podman podman "podman is not installed"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)
[ -n "$version" ] || die "no version = \"...\" in pyproject.toml"
revision=unknown
created=1970-01-01T00:00:00Z
if git rev-parse --git-dir >/dev/null 2>&1; then
  revision=$(git rev-parse HEAD)
  [ -z "$(git status --porcelain --untracked-files=no)" ] || revision=$revision-dirty
  # The commit's time, not the build's: the same commit gives the same label.
  created=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ)
fi

# One build at a time (two test workers, two terminals): the second then finds the
# base made and the layers cached.
mkdir -p "$VAR_DIR"
exec {build_lock}>>"$VAR_DIR/.image-build.lock"
flock -w 1800 "$build_lock" || die "another build holds $(rel "$VAR_DIR")/.image-build.lock"

started=$SECONDS
if [ "$IMAGE_BASE" = "$LOCAL_BASE" ]; then
  if [ "$REBUILD_BASE" = 1 ] || ! podman image exists "$LOCAL_BASE"; then
    BASE_IMAGE=$LOCAL_BASE "$REPO_ROOT/deploy/image/base.sh"
  fi
fi

secret=()
if [ -n "$PIP_CA_BUNDLE" ]; then
  [ -s "$PIP_CA_BUNDLE" ] || die "PIP_CA_BUNDLE (or PIP_CERT) names $PIP_CA_BUNDLE, which is missing or empty"
  secret=(--secret "id=pip-ca,src=$PIP_CA_BUNDLE")
fi

say "Building $IMAGE_NAME:$version from $IMAGE_BASE (revision $revision) ..."
# Docker format: the OCI image config has no HEALTHCHECK.
podman build \
  --format docker \
  --pull=missing \
  --file deploy/image/Containerfile \
  --ignorefile deploy/image/containerignore \
  --build-arg "BASE=$IMAGE_BASE" \
  --build-arg "VERSION=$version" \
  --build-arg "REVISION=$revision" \
  --build-arg "CREATED=$created" \
  "${secret[@]}" \
  --tag "$IMAGE_NAME:$version" \
  --tag "$IMAGE_NAME:latest" \
  .
size=$(podman image inspect --format '{{.Size}}' "$IMAGE_NAME:$version")
say "Built $IMAGE_NAME:$version and $IMAGE_NAME:latest ($((size / 1024 / 1024)) MiB) in $((SECONDS - started)) s"
