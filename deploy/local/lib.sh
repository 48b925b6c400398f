# Helpers shared by the deploy/local scripts. Sourced, not run.
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE_DIR=${VITALS_CACHE_DIR:-$REPO_ROOT/.cache}
VAR_DIR=${VITALS_VAR_DIR:-$REPO_ROOT/var}

say() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_alive FILE: the pid in FILE is a running process
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# wait_until SECONDS DESCRIPTION COMMAND...: poll COMMAND every half second
wait_until() {
  local timeout=$1 what=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "timed out after ${timeout}s waiting for $what" >&2
      return 1
    fi
    sleep 0.5
  done
}

# stop_pid FILE NAME: SIGTERM, wait up to 30 s, then SIGKILL
stop_pid() {
  local file=$1 name=$2 pid
  if ! pid_alive "$file"; then
    rm -f "$file"
    say "$name is not running"
    return 0
  fi
  pid=$(cat "$file")
  kill "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name did not stop in 30 s; killing it" >&2
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
  say "$name stopped"
}
