#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for local runs and tests, from Debian's packages.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

PGPORT=${PGPORT:-5433}
PG_START_TIMEOUT=${PG_START_TIMEOUT:-60}
PG_USER=vitals
HOME_DIR=$VAR_DIR/postgres/$PGPORT
DATA=$HOME_DIR/data

usage() {
  cat <<USAGE
usage: deploy/local/postgres.sh install|start|stop|status|createdb NAME|url [NAME]

  install        apt-get install postgresql when initdb is not found
  start          install if needed, create a cluster in ${HOME_DIR#"$REPO_ROOT"/} (once)
                 and start it on 127.0.0.1:\$PGPORT, user $PG_USER, no password
  stop           stop it
  status         exit 0 when it accepts connections
  createdb NAME  create database NAME unless it exists
  url [NAME]     print the SQLAlchemy URL of database NAME (default: postgres)

environment: PGPORT ($PGPORT), PG_START_TIMEOUT ($PG_START_TIMEOUT), VITALS_VAR_DIR ($VAR_DIR)
USAGE
}

find_bin() {
  local dir
  if command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then
    PG_BIN=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
    return 0
  fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ]; then
      PG_BIN=$dir
      return 0
    fi
  done
  return 1
}

install() {
  if find_bin; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    die "PostgreSQL is not installed; run: sudo apt-get install -y postgresql"
  fi
  say "Installing PostgreSQL from Debian's packages ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
  find_bin || die "postgresql installed, but initdb was not found under /usr/lib/postgresql"
}

# PostgreSQL refuses to run as root: as root, its commands run as the postgres user.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

ready() { as_owner "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT"; }

init_cluster() {
  if [ -f "$DATA/PG_VERSION" ]; then
    return 0
  fi
  mkdir -p "$HOME_DIR"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$HOME_DIR"
    # the postgres user must reach the cluster through the repository's folders
    chmod o+x "$VAR_DIR" "$VAR_DIR/postgres"
  fi
  as_owner "$PG_BIN/initdb" -D "$DATA" -U "$PG_USER" --auth=trust -E UTF8 \
    --locale=C.UTF-8 >"$HOME_DIR/initdb.log" 2>&1 \
    || { cat "$HOME_DIR/initdb.log" >&2; die "initdb failed"; }
  # Throwaway data: no fsync, loopback and the private socket folder only.
  cat >>"$DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$HOME_DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
CONF
}

start() {
  install
  if ready; then
    say "PostgreSQL is already running on 127.0.0.1:$PGPORT"
    return 0
  fi
  if port_open "$PGPORT"; then
    die "port $PGPORT is taken by another process; set PGPORT to a free port"
  fi
  init_cluster
  say "Starting PostgreSQL on 127.0.0.1:$PGPORT (data in ${DATA#"$REPO_ROOT"/}) ..."
  as_owner "$PG_BIN/pg_ctl" -D "$DATA" -l "$HOME_DIR/server.log" -w \
    -t "$PG_START_TIMEOUT" start >/dev/null \
    || { tail -n 20 "$HOME_DIR/server.log" >&2; die "PostgreSQL did not start"; }
  wait_until "$PG_START_TIMEOUT" "PostgreSQL on port $PGPORT" ready
  say "PostgreSQL is ready: $(url postgres)"
}

stop() {
  find_bin || { say "PostgreSQL is not installed"; return 0; }
  if [ ! -f "$DATA/postmaster.pid" ]; then
    say "PostgreSQL on port $PGPORT is not running"
    return 0
  fi
  as_owner "$PG_BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
  say "PostgreSQL on port $PGPORT stopped"
}

url() { say "postgresql+asyncpg://$PG_USER@127.0.0.1:$PGPORT/${1:-postgres}"; }

createdb() {
  local name=${1:?usage: postgres.sh createdb NAME}
  find_bin || die "PostgreSQL is not installed"
  local exists
  exists=$(as_owner "$PG_BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U "$PG_USER" -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$name'")
  if [ "$exists" != 1 ]; then
    as_owner "$PG_BIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U "$PG_USER" "$name"
  fi
  url "$name"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status)
    if find_bin && ready; then say "PostgreSQL runs on 127.0.0.1:$PGPORT"; else say "PostgreSQL is not running on port $PGPORT"; exit 1; fi ;;
  createdb) createdb "${2:-}" ;;
  url) url "${2:-}" ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
