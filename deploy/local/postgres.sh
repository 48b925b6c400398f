#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for local runs and tests, from Debian's packages.
# Listens on 127.0.0.1:$PGPORT only, its unix socket in its own directory, so it never
# clashes with a system cluster. Run with --help for the commands and settings.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PGPORT=${PGPORT:-5433}
check_port PGPORT "$PGPORT"
PG_START_TIMEOUT=${PG_START_TIMEOUT:-60}
PG_USER=vitals
HOME_DIR=$VAR_DIR/postgres/$PGPORT
DATA=$HOME_DIR/data
LOG=$HOME_DIR/server.log
LOCK_FILE=$VAR_DIR/postgres/.$PGPORT.lock

usage() {
  cat <<USAGE
usage: deploy/local/postgres.sh COMMAND [ARG]

A throwaway PostgreSQL cluster on 127.0.0.1:\$PGPORT: superuser $PG_USER, no password.

commands:
  install        apt-get install postgresql unless initdb and pg_ctl are found (on
                 PATH or in /usr/lib/postgresql/*/bin)
  start          install if needed, create the cluster in \$VITALS_VAR_DIR/postgres/\$PGPORT/data
                 (once) and start it; returns when it accepts connections. Already
                 running: says so and exits 0.
  stop           stop it (fast shutdown); exits 0 when it is not running
  status         exit 0 when it runs and accepts connections, 1 when not
  createdb NAME  create database NAME unless it exists; prints its URL
  url [NAME]     print the SQLAlchemy URL of database NAME (default: postgres)
  psql [ARGS]    run psql against it (as $PG_USER, database postgres unless ARGS say)
  reset          stop it and delete its data

environment (current value):
  PGPORT             port ($PGPORT)
  PG_START_TIMEOUT   seconds start waits ($PG_START_TIMEOUT)
  VITALS_VAR_DIR     cluster data ($VAR_DIR)

files: $(rel "$HOME_DIR")/{data/,server.log,initdb.log,.s.PGSQL.$PGPORT}
USAGE
}

# find_bin: set PG_BIN to the directory of initdb and pg_ctl
find_bin() {
  local dir
  if command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then
    PG_BIN=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
    [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_isready" ] && return 0
  fi
  for dir in $(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
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
  apt_install postgresql "PostgreSQL 13+" \
    "PostgreSQL is not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin)"
  find_bin || die "postgresql is installed, but initdb was not found under /usr/lib/postgresql"
  say "Installed PostgreSQL $("$PG_BIN/pg_ctl" --version | awk '{print $3}') in $PG_BIN"
}

need_bin() { find_bin || die "PostgreSQL is not installed; run: deploy/local/postgres.sh install"; }

# as_owner COMMAND...: run COMMAND as the cluster's owner. PostgreSQL refuses to run as
# root, so as root that is the postgres user (which the Debian package creates); from /,
# as it may not be allowed into the current directory.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# running: our cluster's postmaster runs (the first line of postmaster.pid is its pid)
running() { pid_running "$DATA/postmaster.pid" " -D $DATA"; }

ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" -U "$PG_USER" -d postgres; }
ready_or_gone() { ready || ! running; }

prepare_dirs() {
  mkdir -p "$HOME_DIR"
  [ "$(id -u)" -eq 0 ] || return 0
  id postgres >/dev/null 2>&1 \
    || die "running as root, but there is no 'postgres' user to run PostgreSQL as (apt-get install postgresql creates it)"
  # The postgres user must reach the cluster through var/ and own its folder.
  chmod a+x "$VAR_DIR" "$VAR_DIR/postgres"
  chown postgres: "$HOME_DIR"
  if ! runuser -u postgres -- test -w "$HOME_DIR" 2>/dev/null; then
    die "the postgres user cannot reach $HOME_DIR (a parent folder is not searchable for it); make the parents of $VAR_DIR world-searchable (chmod o+x) or set VITALS_VAR_DIR to a folder under /tmp"
  fi
}

init_cluster() {
  [ -f "$DATA/PG_VERSION" ] && return 0
  prepare_dirs
  rm -rf "$DATA"   # an interrupted initdb leaves a half-made folder behind
  say "Creating a PostgreSQL cluster in $(rel "$DATA") ..."
  as_owner "$PG_BIN/initdb" -D "$DATA" -U "$PG_USER" --auth=trust -E UTF8 \
    --locale=C.UTF-8 --no-sync >"$HOME_DIR/initdb.log" 2>&1 \
    || { cat "$HOME_DIR/initdb.log" >&2; die "initdb failed (log: $(rel "$HOME_DIR")/initdb.log)"; }
  # Loopback and a private socket folder only. Throwaway test data: durability is
  # traded for speed (no fsync, no full-page writes), a crash may corrupt the cluster;
  # 'reset' and start again.
  cat >>"$DATA/postgresql.conf" <<CONF

# --- deploy/local/postgres.sh: a throwaway local cluster ---
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$HOME_DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
CONF
}

# A postmaster that was killed stays a zombie until its parent (usually init) reaps it,
# and PostgreSQL will not start while the pid in postmaster.pid still exists.
wait_for_dead_postmaster() {
  local pid
  pid=$(head -n 1 "$DATA/postmaster.pid" 2>/dev/null) || return 0
  [[ $pid =~ ^[0-9]+$ ]] && [ -e "/proc/$pid" ] && ! pid_alive "$pid" || return 0
  say "waiting for the old postmaster (pid $pid, exited, not yet reaped by its parent) to go away ..."
  gone() { [ ! -e "/proc/$pid" ]; }
  wait_until "$PG_START_TIMEOUT" "process $pid to be reaped" gone \
    || die "pid $pid in $(rel "$DATA")/postmaster.pid is a zombie process; PostgreSQL cannot start until its parent reaps it"
}

start() {
  install
  lock "$LOCK_FILE"
  if running; then
    # It may be starting up or shutting down: wait until it accepts connections or exits.
    wait_until "$PG_START_TIMEOUT" "PostgreSQL on 127.0.0.1:$PGPORT" ready_or_gone || true
    if ready; then
      say "PostgreSQL is already running on 127.0.0.1:$PGPORT"
      return 0
    fi
    running && die "PostgreSQL on port $PGPORT runs but does not accept connections; see $(rel "$LOG")"
  fi
  port_open "$PGPORT" \
    && die "port $PGPORT is taken by another process (a system cluster?); set PGPORT to a free port"
  init_cluster
  prepare_dirs
  wait_for_dead_postmaster
  local started=$SECONDS
  say "Starting PostgreSQL $("$PG_BIN/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$PGPORT (data in $(rel "$DATA")) ..."
  # pg_ctl -w waits until the server accepts connections (or fails, or times out).
  local out
  if ! out=$(as_owner "$PG_BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t "$PG_START_TIMEOUT" start \
    2>&1 {LOCK_FD}>&-); then
    warn "$out"
    warn "--- last lines of $(rel "$LOG"):"
    tail -n 20 "$LOG" >&2 || true
    running && as_owner "$PG_BIN/pg_ctl" -D "$DATA" -m immediate stop >/dev/null 2>&1
    die "PostgreSQL did not start on 127.0.0.1:$PGPORT"
  fi
  wait_until "$PG_START_TIMEOUT" "PostgreSQL on 127.0.0.1:$PGPORT" ready \
    || die "PostgreSQL started but does not accept connections; see $(rel "$LOG")"
  say "PostgreSQL is ready on 127.0.0.1:$PGPORT ($((SECONDS - started)) s): $(url postgres)"
}

stop() {
  if ! find_bin; then
    say "PostgreSQL is not installed, so not running"
    return 0
  fi
  lock "$LOCK_FILE"
  if ! running; then
    say "PostgreSQL is not running on 127.0.0.1:$PGPORT"
    return 0
  fi
  as_owner "$PG_BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null \
    || die "pg_ctl could not stop PostgreSQL on port $PGPORT; see $(rel "$LOG")"
  say "PostgreSQL on 127.0.0.1:$PGPORT stopped"
}

status() {
  if find_bin && running; then
    if ready; then
      say "PostgreSQL is running on 127.0.0.1:$PGPORT (data in $(rel "$DATA"))"
      return 0
    fi
    say "PostgreSQL runs on port $PGPORT but does not accept connections (yet)"
    return 1
  fi
  say "PostgreSQL is not running on 127.0.0.1:$PGPORT"
  return 1
}

url() { say "postgresql+asyncpg://$PG_USER@127.0.0.1:$PGPORT/${1:-postgres}"; }

psql_() { "$PG_BIN/psql" -X -h 127.0.0.1 -p "$PGPORT" -U "$PG_USER" "$@"; }

createdb() {
  local name=${1:-}
  [ -n "$name" ] || die "usage: deploy/local/postgres.sh createdb NAME"
  [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]{0,62}$ ]] \
    || die "database name '$name': use letters, digits and _ (at most 63, not starting with a digit)"
  need_bin
  ready || die "PostgreSQL is not running on 127.0.0.1:$PGPORT; run: deploy/local/postgres.sh start"
  if [ "$(psql_ -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'")" = 1 ]; then
    say "database $name exists" >&2
  else
    psql_ -d postgres -q -c "CREATE DATABASE \"$name\"" >/dev/null 2>&1 \
      || [ "$(psql_ -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'")" = 1 ] \
      || die "could not create database $name"
    say "created database $name" >&2
  fi
  url "$name"
}

reset() {
  if find_bin; then stop; fi
  rm -rf "$HOME_DIR"
  rm -f "$LOCK_FILE"
  say "Deleted $(rel "$HOME_DIR")"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  createdb) createdb "${2:-}" ;;
  url) url "${2:-}" ;;
  psql) need_bin; shift; psql_ -d postgres "$@" ;;
  reset) reset ;;
  -h | --help | help) usage ;;
  '') usage >&2; exit 2 ;;
  *) warn "unknown command: $1"; usage >&2; exit 2 ;;
esac
