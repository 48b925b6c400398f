#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft) broker for local runs and tests, from Maven Central.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}
POM=$REPO_ROOT/deploy/local/kafka/pom.xml
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")
LIBS=$CACHE_DIR/kafka/$KAFKA_VERSION/libs
HOME_DIR=$VAR_DIR/kafka/$KAFKA_PORT
PID_FILE=$HOME_DIR/kafka.pid
LOG=$HOME_DIR/logs/server.out

usage() {
  cat <<USAGE
usage: deploy/local/kafka.sh fetch|start|stop|status|reset

  fetch   download Apache Kafka $KAFKA_VERSION and its dependencies with mvn into
          ${LIBS#"$REPO_ROOT"/} (once)
  start   fetch if needed, format a KRaft log directory and start the broker on
          127.0.0.1:\$KAFKA_PORT; wait until it serves (\$KAFKA_START_TIMEOUT s)
  stop    stop the broker on \$KAFKA_PORT
  status  exit 0 when the broker on \$KAFKA_PORT runs
  reset   stop it and delete its data (${HOME_DIR#"$REPO_ROOT"/})

environment: KAFKA_PORT ($KAFKA_PORT), KAFKA_CONTROLLER_PORT ($KAFKA_CONTROLLER_PORT),
KAFKA_HEAP_OPTS ($KAFKA_HEAP_OPTS), KAFKA_START_TIMEOUT ($KAFKA_START_TIMEOUT),
VITALS_CACHE_DIR (${CACHE_DIR}), VITALS_VAR_DIR (${VAR_DIR})
USAGE
}

fetch() {
  if [ -f "$LIBS/.complete" ]; then
    return 0
  fi
  command -v java >/dev/null || die "java not found: install a JDK 17+ (apt-get install openjdk-17-jre-headless)"
  command -v mvn >/dev/null || die "mvn not found: install Maven (apt-get install maven)"
  say "Fetching Apache Kafka $KAFKA_VERSION from Maven Central into ${LIBS#"$REPO_ROOT"/} ..."
  rm -rf "$LIBS"
  mkdir -p "$LIBS"
  mvn --batch-mode --quiet --file "$POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$LIBS" \
    || die "mvn could not fetch Kafka $KAFKA_VERSION (see the messages above)"
  touch "$LIBS/.complete"
}

write_config() {
  mkdir -p "$HOME_DIR/data" "$HOME_DIR/logs"
  cat >"$HOME_DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
log.dirs=$HOME_DIR/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Vitals creates its topics itself, with partitions and replication from settings.
auto.create.topics.enable=false
PROPS
}

# java_cmd HEAP_OPTS: sets JAVA_CMD to the java command line with Kafka's class path
java_cmd() {
  # shellcheck disable=SC2206 # the heap options are several words
  JAVA_CMD=(java $1 -Dlog4j2.configurationFile="$REPO_ROOT/deploy/local/kafka/log4j2.properties"
    -cp "$LIBS/*")
}

format_storage() {
  if [ -f "$HOME_DIR/data/meta.properties" ]; then
    return 0
  fi
  local cluster_id
  java_cmd -Xmx256m
  cluster_id=$("${JAVA_CMD[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
  "${JAVA_CMD[@]}" kafka.tools.StorageTool format --standalone \
    -t "$cluster_id" -c "$HOME_DIR/server.properties" >"$HOME_DIR/logs/format.out" 2>&1 \
    || { cat "$HOME_DIR/logs/format.out" >&2; die "could not format $HOME_DIR/data"; }
}

serving() {
  port_open "$KAFKA_PORT" && grep -q "Kafka Server started" "$LOG" 2>/dev/null
}

serving_or_dead() { serving || ! pid_alive "$PID_FILE"; }

start() {
  if pid_alive "$PID_FILE"; then
    say "Kafka is already running on 127.0.0.1:$KAFKA_PORT (pid $(cat "$PID_FILE"))"
    return 0
  fi
  if port_open "$KAFKA_PORT"; then
    die "port $KAFKA_PORT is taken by another process; set KAFKA_PORT to a free port"
  fi
  fetch
  write_config
  format_storage
  say "Starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (data in ${HOME_DIR#"$REPO_ROOT"/}) ..."
  : >"$LOG"
  java_cmd "$KAFKA_HEAP_OPTS"
  "${JAVA_CMD[@]}" kafka.Kafka "$HOME_DIR/server.properties" >>"$LOG" 2>&1 </dev/null &
  echo $! >"$PID_FILE"
  disown
  if ! wait_until "$KAFKA_START_TIMEOUT" "Kafka to serve on port $KAFKA_PORT" serving_or_dead \
    || ! serving; then
    say "last lines of $LOG:" >&2
    tail -n 30 "$LOG" >&2
    stop_pid "$PID_FILE" Kafka >/dev/null
    exit 1
  fi
  say "Kafka is ready on 127.0.0.1:$KAFKA_PORT"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop_pid "$PID_FILE" "Kafka on port $KAFKA_PORT" ;;
  status)
    if pid_alive "$PID_FILE"; then say "Kafka runs on 127.0.0.1:$KAFKA_PORT"; else say "Kafka is not running on port $KAFKA_PORT"; exit 1; fi ;;
  reset) stop_pid "$PID_FILE" "Kafka on port $KAFKA_PORT"; rm -rf "$HOME_DIR" ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
