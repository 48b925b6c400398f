#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft: broker and controller in one JVM) for local
# runs and tests, fetched from Maven Central with mvn. Listens on 127.0.0.1 only.
# Run with --help for the commands and settings.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_PORT=${KAFKA_PORT:-9092}
check_port KAFKA_PORT "$KAFKA_PORT"
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-20}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}
KAFKA_OPTS=${KAFKA_OPTS:-}

CONF_DIR=$REPO_ROOT/deploy/local/kafka
POM=$CONF_DIR/pom.xml
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")
[ -n "$KAFKA_VERSION" ] || die "no <kafka.version> in $POM"
LIBS=$CACHE_DIR/kafka/$KAFKA_VERSION/libs
MARKER=$LIBS/.fetched
HOME_DIR=$VAR_DIR/kafka/$KAFKA_PORT
DATA=$HOME_DIR/data
LOGS=$HOME_DIR/logs
PROPS=$HOME_DIR/server.properties
PID_FILE=$HOME_DIR/kafka.pid
# What identifies our broker's process: its command line ends with this.
PID_PATTERN="kafka.Kafka $PROPS"

usage() {
  cat <<USAGE
usage: deploy/local/kafka.sh COMMAND

A single-node Apache Kafka $KAFKA_VERSION broker (KRaft) on 127.0.0.1, from Maven Central.

commands:
  fetch   download Kafka and its runtime dependencies with mvn into
          \$VITALS_CACHE_DIR/kafka/$KAFKA_VERSION/libs (once; again when the pom changes)
  start   fetch if needed, format a KRaft log directory in \$VITALS_VAR_DIR/kafka/\$KAFKA_PORT
          (once) and start the broker in the background; returns when it answers
          Kafka requests, or fails after \$KAFKA_START_TIMEOUT s printing its last log
          lines. Already running: says so and exits 0.
  stop    stop the broker (SIGTERM, SIGKILL after \$KAFKA_STOP_TIMEOUT s); exits 0 when
          it is not running
  status  exit 0 when the broker runs, 1 when not
  reset   stop the broker and delete its data directory

environment (current value):
  KAFKA_PORT             client port ($KAFKA_PORT)
  KAFKA_CONTROLLER_PORT  KRaft controller port (default KAFKA_PORT+1000; a formatted
                         data directory keeps the port it was formatted with)
  KAFKA_HEAP_OPTS        JVM heap options ($KAFKA_HEAP_OPTS)
  KAFKA_OPTS             extra JVM options (${KAFKA_OPTS:-none})
  KAFKA_START_TIMEOUT    seconds start waits ($KAFKA_START_TIMEOUT)
  KAFKA_STOP_TIMEOUT     seconds stop waits before SIGKILL ($KAFKA_STOP_TIMEOUT)
  VITALS_CACHE_DIR       downloads ($CACHE_DIR)
  VITALS_VAR_DIR         broker data and logs ($VAR_DIR)

files: $(rel "$HOME_DIR")/{server.properties,kafka.pid,data/,logs/server.log,logs/server.out}
USAGE
}

# --- fetch -------------------------------------------------------------------------

pom_digest() { sha256sum "$POM" | cut -d' ' -f1; }

fetched() { [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$(pom_digest)" ]; }

fetch() {
  if fetched; then
    say "Kafka $KAFKA_VERSION is already fetched in $(rel "$LIBS")"
    return 0
  fi
  need mvn "install Maven: apt-get install -y maven"
  # One fetch at a time (two brokers started at once in a fresh clone both fetch).
  mkdir -p "$(dirname "$LIBS")"
  local fetch_fd
  exec {fetch_fd}>>"$(dirname "$LIBS")/.fetch.lock"
  flock -w 600 "$fetch_fd" || die "another fetch of Kafka $KAFKA_VERSION holds $(dirname "$LIBS")/.fetch.lock"
  if fetched; then
    exec {fetch_fd}>&-
    return 0
  fi
  local tmp=$LIBS.tmp.$$ started=$SECONDS
  say "Fetching Apache Kafka $KAFKA_VERSION and its dependencies from Maven Central into $(rel "$LIBS") ..."
  rm -rf "$tmp"
  # shellcheck disable=SC2064 # expand $tmp now
  trap "rm -rf '$tmp'" EXIT
  # (sed: Debian's mvn prints colour resets even in batch mode)
  if ! mvn --batch-mode --quiet --file "$POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2; then
    die "mvn could not fetch Kafka $KAFKA_VERSION (see its messages above; Maven Central must be reachable, ~/.m2 writable)"
  fi
  [ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ] || die "mvn did not deliver kafka_2.13-$KAFKA_VERSION.jar"
  pom_digest >"$tmp/.fetched"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  trap - EXIT
  exec {fetch_fd}>&-
  say "Fetched $(find "$LIBS" -name '*.jar' | wc -l) jars in $((SECONDS - started)) s"
}

# --- start -------------------------------------------------------------------------

check_java() {
  need java "install a Java 17+ runtime: apt-get install -y openjdk-17-jre-headless"
  local version major
  version=$(java -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n 1)
  major=${version%%.*}
  [ "$major" = 1 ] && major=$(echo "$version" | cut -d. -f2)
  [[ $major =~ ^[0-9]+$ ]] && [ "$major" -ge 17 ] \
    || die "Kafka $KAFKA_VERSION needs Java 17 or newer; java is '${version:-unknown}'"
}

# The controller port is part of the formatted KRaft metadata (the voter's endpoint),
# so a formatted data directory keeps using the one it was formatted with.
resolve_controller_port() {
  local saved=
  if [ -f "$DATA/meta.properties" ] && [ -f "$PROPS" ]; then
    saved=$(sed -n 's/^controller.quorum.bootstrap.servers=127.0.0.1:\([0-9]*\)$/\1/p' "$PROPS")
  fi
  if [ -n "${KAFKA_CONTROLLER_PORT:-}" ]; then
    check_port KAFKA_CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT"
    if [ -n "$saved" ] && [ "$saved" != "$KAFKA_CONTROLLER_PORT" ]; then
      die "$(rel "$DATA") was formatted with controller port $saved, not $KAFKA_CONTROLLER_PORT; unset KAFKA_CONTROLLER_PORT or run 'deploy/local/kafka.sh reset' first"
    fi
    CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT
  elif [ -n "$saved" ]; then
    CONTROLLER_PORT=$saved
  elif [ "$KAFKA_PORT" -le 64535 ]; then
    CONTROLLER_PORT=$((KAFKA_PORT + 1000))
  else
    CONTROLLER_PORT=$((KAFKA_PORT - 1000))
  fi
  [ "$CONTROLLER_PORT" != "$KAFKA_PORT" ] || die "KAFKA_CONTROLLER_PORT must differ from KAFKA_PORT"
}

write_config() {
  mkdir -p "$DATA" "$LOGS"
  cat >"$PROPS.tmp" <<PROPS
# Written by deploy/local/kafka.sh at every start; edits here are lost.
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
log.dirs=$DATA
# One broker: everything with a single replica.
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Vitals creates its topics itself, with partitions and replication from settings.
auto.create.topics.enable=false
# Throwaway data: small segments.
log.segment.bytes=16777216
PROPS
  mv "$PROPS.tmp" "$PROPS"
}

# tool CLASS ARGS...: run a Kafka command-line tool class
tool() {
  java -Xmx256m -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$CONF_DIR/tools-log4j2.properties" \
    -cp "$LIBS/*" "$@"
}

format_storage() {
  [ -f "$DATA/meta.properties" ] && return 0
  # Never formatted (or a format was interrupted): nothing in it is worth keeping.
  rm -rf "$DATA"
  mkdir -p "$DATA"
  local cluster_id
  cluster_id=$(tool kafka.tools.StorageTool random-uuid 2>"$LOGS/format.out" | tail -n 1) \
    && [ -n "$cluster_id" ] \
    || { cat "$LOGS/format.out" >&2; die "kafka.tools.StorageTool random-uuid failed"; }
  say "Formatting $(rel "$DATA") (cluster id $cluster_id) ..."
  tool kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$PROPS" \
    >>"$LOGS/format.out" 2>&1 \
    || { cat "$LOGS/format.out" >&2; die "could not format $(rel "$DATA")"; }
}

running() { pid_running "$PID_FILE" "$PID_PATTERN"; }

# api_versions: the broker answers a Kafka ApiVersions request on KAFKA_PORT
api_versions() {
  if ! command -v python3 >/dev/null 2>&1; then
    port_open "$KAFKA_PORT"
    return
  fi
  python3 - "$KAFKA_PORT" <<'PY' 2>/dev/null
import socket, struct, sys

sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
client = b"vitals-kafka-sh"
# request header v1 + ApiVersions v0 (api key 18, no body), correlation id 42
body = struct.pack(">hhih", 18, 0, 42, len(client)) + client
sock.sendall(struct.pack(">i", len(body)) + body)


def read(n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            sys.exit(1)
        data += chunk
    return data


(size,) = struct.unpack(">i", read(4))
correlation, error = struct.unpack(">ih", read(size)[:6])
sys.exit(0 if correlation == 42 and error == 0 else 1)
PY
}

START_STAMP=
START_PID=
# started_line: the broker logged "Kafka Server started" since this start began; the log
# rolls over by size (a start can log megabytes), so the rolled files count too.
started_line() {
  awk -v since="[$START_STAMP" '/Kafka Server started/ && substr($0, 1, 20) >= since { found = 1 }
      END { exit !found }' "$LOGS"/server.log* 2>/dev/null
}

serving() { started_line && api_versions; }
# (by pid: right after the fork the command line is not java's yet)
serving_or_dead() { serving || ! pid_alive "$START_PID"; }

print_logs() {
  local logged
  logged=$(tail -n 40 "$LOGS/server.log" 2>/dev/null)
  if [ -n "$logged" ]; then
    warn "--- last lines of $(rel "$LOGS")/server.log:"
    warn "$logged"
  fi
  if [ -s "$LOGS/server.out" ]; then
    warn "--- last lines of $(rel "$LOGS")/server.out:"
    tail -n 20 "$LOGS/server.out" >&2 || true
  elif [ -z "$logged" ]; then
    warn "(the broker logged nothing yet)"
  fi
}

start() {
  lock "$VAR_DIR/kafka/.$KAFKA_PORT.lock"
  if running; then
    say "Kafka is already running on 127.0.0.1:$KAFKA_PORT (pid $(cat "$PID_FILE"))"
    return 0
  fi
  rm -f "$PID_FILE"
  check_java
  resolve_controller_port
  port_open "$KAFKA_PORT" \
    && die "port $KAFKA_PORT is taken by another process; stop it or set KAFKA_PORT to a free port"
  port_open "$CONTROLLER_PORT" \
    && die "controller port $CONTROLLER_PORT is taken by another process; stop it or set KAFKA_PORT (and reset) to use other ports"
  fetched || fetch
  write_config
  format_storage

  local started=$SECONDS
  say "Starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (controller :$CONTROLLER_PORT, data in $(rel "$HOME_DIR")) ..."
  START_STAMP=$(date '+%Y-%m-%d %H:%M:%S')
  : >"$LOGS/server.out"
  # shellcheck disable=SC2206 # the option variables hold several words
  local cmd=(java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
    -Djava.awt.headless=true $KAFKA_OPTS
    -Dkafka.logs.dir="$LOGS" -Dlog4j2.configurationFile="$CONF_DIR/log4j2.properties"
    -cp "$LIBS/*" kafka.Kafka "$PROPS")
  # In its own session (setsid execs in place here: a script's background job is not a
  # process group leader), so that Ctrl-C in the terminal that started it does not
  # reach it; without the lock's file descriptor, which would otherwise stay locked.
  (cd "$HOME_DIR" && exec setsid "${cmd[@]}" </dev/null >>"$LOGS/server.out" 2>&1 {LOCK_FD}>&-) &
  START_PID=$!
  echo "$START_PID" >"$PID_FILE"
  if ! wait_until "$KAFKA_START_TIMEOUT" "Kafka on 127.0.0.1:$KAFKA_PORT" serving_or_dead \
    || ! serving; then
    pid_alive "$START_PID" || warn "Kafka exited during startup"
    print_logs
    if pid_alive "$START_PID"; then stop_pid "$START_PID" Kafka 10; fi
    rm -f "$PID_FILE"
    die "Kafka did not start on 127.0.0.1:$KAFKA_PORT; logs in $(rel "$LOGS")"
  fi
  running || die "pid $START_PID in $(rel "$PID_FILE") is not the broker (setsid forked?)"
  say "Kafka is ready on 127.0.0.1:$KAFKA_PORT (pid $START_PID, $((SECONDS - started)) s)"
}

# --- stop, status, reset -------------------------------------------------------------

stop() {
  lock "$VAR_DIR/kafka/.$KAFKA_PORT.lock"
  if ! running; then
    rm -f "$PID_FILE"
    say "Kafka is not running on 127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  local pid
  pid=$(cat "$PID_FILE")
  say "Stopping Kafka on 127.0.0.1:$KAFKA_PORT (pid $pid) ..."
  stop_pid "$pid" Kafka "$KAFKA_STOP_TIMEOUT"
  rm -f "$PID_FILE"
  say "Kafka on 127.0.0.1:$KAFKA_PORT stopped"
}

status() {
  if running; then
    if api_versions; then
      say "Kafka is running on 127.0.0.1:$KAFKA_PORT (pid $(cat "$PID_FILE"), data in $(rel "$HOME_DIR"))"
    else
      say "Kafka is running (pid $(cat "$PID_FILE")) but does not answer on 127.0.0.1:$KAFKA_PORT yet"
    fi
    return 0
  fi
  say "Kafka is not running on 127.0.0.1:$KAFKA_PORT"
  return 1
}

reset() {
  stop
  rm -rf "$HOME_DIR"
  rm -f "$VAR_DIR/kafka/.$KAFKA_PORT.lock"
  say "Deleted $(rel "$HOME_DIR")"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  reset) reset ;;
  -h | --help | help) usage ;;
  '') usage >&2; exit 2 ;;
  *) warn "unknown command: $1"; usage >&2; exit 2 ;;
esac
