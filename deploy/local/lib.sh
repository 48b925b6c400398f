# Helpers shared by the deploy/local scripts. Sourced, not run.
# shellcheck shell=bash

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# abspath PATH: PATH made absolute (relative to the current directory); need not exist
abspath() {
  case $1 in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$PWD/$1" ;;
  esac
}

# shellcheck disable=SC2034 # used by the scripts that source this file
CACHE_DIR=$(abspath "${VITALS_CACHE_DIR:-$REPO_ROOT/.cache}")
# shellcheck disable=SC2034
VAR_DIR=$(abspath "${VITALS_VAR_DIR:-$REPO_ROOT/var}")

say() { printf '%s\n' "$*"; }
warn() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# rel PATH: PATH relative to the repository when inside it, for messages
rel() { printf '%s\n' "${1#"$REPO_ROOT"/}"; }

# need COMMAND HINT: die with HINT when COMMAND is not on PATH
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found; $2"; }

# check_port NAME VALUE: die unless VALUE is a TCP port number
check_port() {
  [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le 65535 ] \
    || die "$1 must be a port number (1-65535), not '$2'"
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_until SECONDS DESCRIPTION COMMAND...: run COMMAND every half second until it
# succeeds; after SECONDS, say so on stderr and return 1
wait_until() {
  local timeout=$1 what=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      warn "timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
}

# pid_alive PID: PID is a live process (not a zombie that nobody has reaped yet)
pid_alive() {
  [[ $1 =~ ^[0-9]+$ ]] && kill -0 "$1" 2>/dev/null \
    && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# pid_running FILE PATTERN: the first line of FILE is the pid of a live process whose
# command line contains PATTERN (a pid reused by another program does not count)
pid_running() {
  local pid
  [ -f "$1" ] || return 1
  pid=$(head -n 1 "$1" 2>/dev/null) || return 1
  pid_alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# stop_pid PID NAME SECONDS: SIGTERM, wait up to SECONDS, then SIGKILL
stop_pid() {
  local pid=$1 name=$2 timeout=$3 deadline
  kill -TERM "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + timeout))
  while pid_alive "$pid"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      warn "$name did not stop within ${timeout}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.25
  done
}

# lock FILE: hold an exclusive lock on FILE until the script exits, so that two
# invocations for the same server do not start or stop it at the same time
lock() {
  mkdir -p "$(dirname "$1")"
  exec {LOCK_FD}>>"$1"
  if ! flock -n "$LOCK_FD"; then
    warn "waiting for another $(basename "$0") on the same port to finish ..."
    flock -w 300 "$LOCK_FD" || die "could not lock $1 within 300s"
  fi
}

# apt_install PACKAGE WHAT MISSING: install PACKAGE from Debian's packages as root, or die
# saying MISSING and the command to run (not root, or no apt-get)
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    die "$3; run: sudo apt-get install -y $1"
  fi
  need apt-get "install $2 with your package manager, then run this again"
  say "Installing $2 from Debian's packages (apt-get install $1) ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq -o Dpkg::Use-Pty=0 "$1" >/dev/null || die "apt-get install $1 failed"
}

# first_executable CANDIDATE...: print the first candidate that is an executable file
# (empty candidates, e.g. an unset override variable, are skipped)
first_executable() {
  local candidate
  for candidate in "$@"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
      printf '%s\n' "$candidate"
      return 0
    fi
  done
  return 1
}
