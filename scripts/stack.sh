#!/usr/bin/env bash
# Local backing services for the LMS progress service, without Docker:
#   Kafka 3.9.1 (single-node KRaft, jars from Maven Central) on 127.0.0.1:9092
#   PostgreSQL (Debian package, cluster "main")               on 127.0.0.1:5432
#   Redis (Debian package)                                     on 127.0.0.1:6379
#   kafka-secure: a second, separate Kafka with one SASL_SSL listener on 127.0.0.1:9094
#     (self-signed CA made at its first start; users for PLAIN and SCRAM-SHA-256/512)
#
# Usage: scripts/stack.sh up     [kafka|postgres|redis|kafka-secure ...]
#        scripts/stack.sh down   [--purge] [kafka|postgres|redis|kafka-secure ...]
#        scripts/stack.sh status [kafka|postgres|redis|kafka-secure ...]
#
# No service name means kafka, postgres and redis (`down` also stops kafka-secure if it runs):
# kafka-secure is started only when asked for (the secure-Kafka tests ask for it), so the
# demo does not pay for a second JVM. `up` is idempotent. `down --purge` also deletes the
# Kafka log dirs but keeps the downloaded jars. `status` exits 0 when every asked-for service
# answers, 1 otherwise. `up kafka-secure` writes the client settings that reach it
# (KAFKA_SECURITY_PROTOCOL=SASL_SSL, ...) to $STACK_DIR/kafka-secure/client.env.
#
# State lives outside git in STACK_DIR=${PROGRESS_STACK_DIR:-$HOME/.cache/lms-progress}.
# Progress goes to stderr; `up` prints one "name url" line per service to stdout.
# Installs what is missing (apt: postgresql, redis-server, a JRE, maven); needs root or
# passwordless sudo for that and for PostgreSQL.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STACK_DIR="${PROGRESS_STACK_DIR:-${HOME:-/tmp}/.cache/lms-progress}"

KAFKA_VERSION=3.9.1
KAFKA_HOST=127.0.0.1
KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
KAFKA_POM="$SCRIPT_DIR/kafka/pom.xml"
KAFKA_LOG4J="$SCRIPT_DIR/kafka/log4j.properties"
KAFKA_LIBS="$STACK_DIR/kafka-$KAFKA_VERSION/libs"
KAFKA_DATA="$STACK_DIR/kafka-data"
KAFKA_CONF="$STACK_DIR/kafka-server.properties"
KAFKA_CLUSTER_ID_FILE="$STACK_DIR/kafka-cluster-id"
KAFKA_LOG="$STACK_DIR/kafka.log"
KAFKA_LOGS_DIR="$STACK_DIR/kafka-logs"
KAFKA_PID="$STACK_DIR/kafka.pid"
# Short-lived tools (StorageTool, readiness check) log here, not into the broker's server.log.
KAFKA_TOOLS_LOGS_DIR="$KAFKA_LOGS_DIR/tools"
KAFKA_READY_TIMEOUT="${STACK_KAFKA_READY_TIMEOUT:-90}"
KAFKA_STOP_TIMEOUT=30

# The secure broker: its own process, ports, data dir and cluster, so starting or stopping it
# never touches the plain broker that other runs share. Small heap: tests only.
KS_HOST=127.0.0.1
KS_PORT=9094
KS_CONTROLLER_PORT=9095
KS_DIR="$STACK_DIR/kafka-secure"
KS_DATA="$KS_DIR/data"
KS_CONF="$KS_DIR/server.properties"
KS_CLIENT_CONF="$KS_DIR/client.properties"
KS_CLIENT_ENV="$KS_DIR/client.env"
KS_PKI="$KS_DIR/pki"
KS_LOG="$KS_DIR/kafka.log"
KS_LOGS_DIR="$KS_DIR/logs"
KS_PID="$KS_DIR/kafka.pid"
KS_HEAP="${STACK_KAFKA_SECURE_HEAP:--Xms128m -Xmx320m}"
# Local test credentials, not secrets: the broker's own (inter-broker) user, and the user the
# service connects as, with the same password for PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.
KS_ADMIN_USER=admin
KS_ADMIN_PASSWORD=admin-secret
KS_USER=progress
KS_PASSWORD=progress-secret
KS_URL="$KS_HOST:$KS_PORT"

PG_HOST=127.0.0.1
PG_PORT=5432
PG_CLUSTER=main
PG_USER=progress
PG_PASSWORD=progress
PG_DB=progress

REDIS_HOST=127.0.0.1
REDIS_PORT=6379
REDIS_PID="$STACK_DIR/redis.pid"
REDIS_LOG="$STACK_DIR/redis.log"

KAFKA_URL="$KAFKA_HOST:$KAFKA_PORT"
PG_URL="postgresql://$PG_USER:$PG_PASSWORD@$PG_HOST:$PG_PORT/$PG_DB"
REDIS_URL="redis://$REDIS_HOST:$REDIS_PORT/0"

if [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then
  JAVA="$JAVA_HOME/bin/java"
else
  JAVA=java
fi

log() { printf 'stack: %s\n' "$*" >&2; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '9,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# ---------------------------------------------------------------- helpers

as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    die "need root (or passwordless sudo) to run: $*"
  fi
}

# Run as the postgres OS user, from a directory it can read (avoids psql's chdir warning).
as_postgres() {
  if [[ $EUID -eq 0 ]]; then
    (cd / && runuser -u postgres -- "$@")
  elif [[ "$(id -un)" == postgres ]]; then
    (cd / && "$@")
  else
    (cd / && sudo -n -u postgres -- "$@")
  fi
}

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install manually: $*"
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    APT_UPDATED=1
  fi
  log "apt-get install -y $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2
}

# True if something accepts TCP connections on host:port (bash's /dev/tcp, no tools needed).
port_open() {
  # shellcheck disable=SC2016  # $0/$1 are expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# ---------------------------------------------------------------- kafka

# broker_pid <pidfile>: prints the pid from the pidfile if that process is alive and is a
# Kafka broker (the plain one and kafka-secure alike).
broker_pid() {
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(tr -dc '0-9' <"$1")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
  printf '%s\n' "$pid"
}

# broker_kill <name> <pid>: SIGTERM, then SIGKILL after KAFKA_STOP_TIMEOUT seconds.
broker_kill() {
  log "stopping $1 (pid $2)"
  kill -TERM "$2" 2>/dev/null || true
  local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
  while kill -0 "$2" 2>/dev/null; do
    if (( SECONDS >= deadline )); then
      log "$1 still alive after ${KAFKA_STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "$2" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 0.5
  done
}

kafka_pid() { broker_pid "$KAFKA_PID"; }

kafka_have_libs() {
  [[ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]]
}

# Ask the broker: BrokerApiVersionsCommand (in kafka_2.13) sends a Metadata request to the
# bootstrap server, then ApiVersions to every broker the metadata lists. We require our
# node (id: 1) in its answer, so a bare open port is not enough.
kafka_answers() {
  port_open "$KAFKA_HOST" "$KAFKA_PORT" || return 1
  if ! kafka_have_libs; then
    return 0  # cannot ask without jars; an open port is the best we know
  fi
  timeout 30 "$JAVA" -Xms32m -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    -Dlog4j.configuration="file:$KAFKA_LOG4J" -Dkafka.logs.dir="$KAFKA_TOOLS_LOGS_DIR" \
    -cp "$KAFKA_LIBS/*" kafka.admin.BrokerApiVersionsCommand \
    --bootstrap-server "$KAFKA_URL" 2>/dev/null | grep -q "(id: 1 rack"
}

kafka_ensure_tools() {
  if ! command -v "$JAVA" >/dev/null 2>&1; then
    apt_install default-jre-headless
  fi
  if ! kafka_have_libs && ! command -v mvn >/dev/null 2>&1; then
    apt_install maven
  fi
}

kafka_ensure_libs() {
  kafka_have_libs && return 0
  local tmp="$KAFKA_LIBS.tmp"
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # Output goes to a file (Debian's mvn 3.8 prints stray ANSI resets even with -q -B).
  if ! mvn -q -B -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" >"$STACK_DIR/mvn.log" 2>&1; then
    cat "$STACK_DIR/mvn.log" >&2
    die "mvn dependency:copy-dependencies failed (see above)"
  fi
  [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
}

kafka_cluster_id() {
  # A log dir formatted with another cluster id will not start, so the id already
  # written in the log dir wins over the one we keep.
  local id=""
  if [[ -f "$KAFKA_DATA/meta.properties" ]]; then
    id="$(sed -n 's/^cluster\.id=//p' "$KAFKA_DATA/meta.properties" | head -n1)"
  fi
  if [[ -z "$id" && -s "$KAFKA_CLUSTER_ID_FILE" ]]; then
    id="$(head -n1 "$KAFKA_CLUSTER_ID_FILE")"
  fi
  if [[ -z "$id" ]]; then
    id="$("$JAVA" -cp "$KAFKA_LIBS/*" -Dlog4j.configuration="file:$KAFKA_LOG4J" \
      -Dkafka.logs.dir="$KAFKA_TOOLS_LOGS_DIR" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
    [[ -n "$id" ]] || die "kafka.tools.StorageTool random-uuid printed nothing"
  fi
  printf '%s\n' "$id" >"$KAFKA_CLUSTER_ID_FILE"
  printf '%s\n' "$id"
}

kafka_write_config() {
  cat >"$KAFKA_CONF" <<EOF
# Generated by scripts/stack.sh on every 'up'; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=8
auto.create.topics.enable=true
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
EOF
}

# Starts the broker in the background if needed; readiness is checked by kafka_wait.
KAFKA_EXTERNAL=0
kafka_spawn() {
  local pid id
  if pid="$(kafka_pid)"; then
    log "kafka already running (pid $pid)"
    return 0
  fi
  rm -f "$KAFKA_PID"
  if port_open "$KAFKA_HOST" "$KAFKA_PORT" || port_open "$KAFKA_HOST" "$KAFKA_CONTROLLER_PORT"; then
    if kafka_answers; then
      log "kafka: a broker not started by this script already answers on $KAFKA_URL; using it"
      KAFKA_EXTERNAL=1
      return 0
    fi
    die "port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT on $KAFKA_HOST is taken by something that is not a Kafka broker"
  fi

  kafka_ensure_tools
  kafka_ensure_libs
  mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS_DIR" "$KAFKA_TOOLS_LOGS_DIR"
  kafka_write_config
  id="$(kafka_cluster_id)"
  log "formatting kafka storage (cluster id $id)"
  "$JAVA" -cp "$KAFKA_LIBS/*" -Dlog4j.configuration="file:$KAFKA_LOG4J" \
    -Dkafka.logs.dir="$KAFKA_TOOLS_LOGS_DIR" kafka.tools.StorageTool format \
    -t "$id" -c "$KAFKA_CONF" --ignore-formatted >>"$KAFKA_LOG" 2>&1 \
    || { tail -n 30 "$KAFKA_LOG" >&2; die "kafka storage format failed"; }

  # Keep one previous log around instead of growing forever.
  if [[ -f "$KAFKA_LOG" ]] && (( $(stat -c %s "$KAFKA_LOG") > 50 * 1024 * 1024 )); then
    mv -f "$KAFKA_LOG" "$KAFKA_LOG.1"
  fi

  log "starting kafka $KAFKA_VERSION on $KAFKA_URL (log: $KAFKA_LOG)"
  # setsid: own session, so the broker outlives the shell/CI step that started it.
  # The inner bash writes its own pid and execs java, so the pidfile is the JVM's pid.
  # shellcheck disable=SC2016  # expanded by the inner bash
  setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$KAFKA_PID" \
    "$JAVA" -Xms512m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$KAFKA_LOG4J" -Dkafka.logs.dir="$KAFKA_LOGS_DIR" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONF" \
    >>"$KAFKA_LOG" 2>&1 </dev/null &
  local _
  for _ in $(seq 1 50); do
    [[ -s "$KAFKA_PID" ]] && break
    sleep 0.1
  done
  [[ -s "$KAFKA_PID" ]] || die "kafka did not write its pidfile"
}

kafka_wait() {
  [[ $KAFKA_EXTERNAL -eq 1 ]] && return 0
  local deadline=$((SECONDS + KAFKA_READY_TIMEOUT)) pid
  while :; do
    if ! pid="$(kafka_pid)"; then
      log "kafka exited during startup; last lines of $KAFKA_LOG:"
      tail -n 40 "$KAFKA_LOG" >&2 || true
      die "kafka failed to start"
    fi
    if kafka_answers; then
      log "kafka ready (pid $pid)"
      return 0
    fi
    if (( SECONDS >= deadline )); then
      log "kafka did not answer within ${KAFKA_READY_TIMEOUT}s; last lines of $KAFKA_LOG:"
      tail -n 40 "$KAFKA_LOG" >&2 || true
      die "kafka not ready"
    fi
    sleep 1
  done
}

kafka_stop() {
  local pid
  if ! pid="$(kafka_pid)"; then
    rm -f "$KAFKA_PID"
    if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
      log "kafka: something not started by this script listens on $KAFKA_URL; leaving it alone"
    else
      log "kafka not running"
    fi
    return 0
  fi
  broker_kill kafka "$pid"
  rm -f "$KAFKA_PID"
  log "kafka stopped"
}
# ---------------------------------------------------------------- kafka-secure

ks_pid() { broker_pid "$KS_PID"; }

# A self-signed CA and a broker certificate naming 127.0.0.1 and localhost (clients check
# the host name), made once; PEM throughout: Kafka reads PEM key stores, so no keytool.
ks_ensure_pki() {
  [[ -s "$KS_PKI/ca.pem" && -s "$KS_PKI/broker-keystore.pem" ]] && return 0
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  log "kafka-secure: making a self-signed CA and a broker certificate in $KS_PKI"
  rm -rf "$KS_PKI"
  mkdir -p "$KS_PKI"
  (
    cd "$KS_PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=lms-progress local CA" \
      -keyout ca-key.pem -out ca.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$KS_HOST" \
      -keyout broker-key.pem -out broker.csr 2>/dev/null
    printf 'subjectAltName=IP:%s,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' \
      "$KS_HOST" >broker.ext
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
      -days 3650 -extfile broker.ext -out broker.pem 2>/dev/null
    # Kafka's PEM key store: the PKCS#8 key, then the certificate chain.
    { openssl pkcs8 -topk8 -nocrypt -in broker-key.pem; cat broker.pem ca.pem; } \
      >broker-keystore.pem
    chmod 600 ca-key.pem broker-key.pem broker-keystore.pem
  ) || die "kafka-secure: openssl failed to make the certificates"
}

ks_jaas_scram() {
  printf 'org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";' "$1" "$2"
}

ks_write_config() {
  cat >"$KS_CONF" <<EOF
# Generated by scripts/stack.sh on every 'up kafka-secure'; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$KS_HOST:$KS_CONTROLLER_PORT
listeners=SASL_SSL://$KS_HOST:$KS_PORT,CONTROLLER://$KS_HOST:$KS_CONTROLLER_PORT
advertised.listeners=SASL_SSL://$KS_HOST:$KS_PORT
inter.broker.listener.name=SASL_SSL
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
# PLAIN users live in the broker's JAAS entry; SCRAM users in the cluster metadata, added
# when the storage is formatted (--add-scram).
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="$KS_ADMIN_USER" password="$KS_ADMIN_PASSWORD" user_$KS_ADMIN_USER="$KS_ADMIN_PASSWORD" user_$KS_USER="$KS_PASSWORD";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=$(ks_jaas_scram "$KS_ADMIN_USER" "$KS_ADMIN_PASSWORD")
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=$(ks_jaas_scram "$KS_ADMIN_USER" "$KS_ADMIN_PASSWORD")
ssl.keystore.type=PEM
ssl.keystore.location=$KS_PKI/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$KS_PKI/ca.pem
ssl.endpoint.identification.algorithm=https
log.dirs=$KS_DATA
num.partitions=8
auto.create.topics.enable=true
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
EOF
  # The readiness check is a client of the broker like any other.
  cat >"$KS_CLIENT_CONF" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=$(ks_jaas_scram "$KS_USER" "$KS_PASSWORD")
ssl.truststore.type=PEM
ssl.truststore.location=$KS_PKI/ca.pem
EOF
  # The service's settings (adapters/settings.py) that reach it.
  cat >"$KS_CLIENT_ENV" <<EOF
KAFKA_BOOTSTRAP=$KS_URL
KAFKA_SECURITY_PROTOCOL=SASL_SSL
KAFKA_SASL_MECHANISM=SCRAM-SHA-512
KAFKA_SASL_USERNAME=$KS_USER
KAFKA_SASL_PASSWORD=$KS_PASSWORD
KAFKA_SSL_CAFILE=$KS_PKI/ca.pem
EOF
}

ks_answers() {
  port_open "$KS_HOST" "$KS_PORT" || return 1
  kafka_have_libs && [[ -s "$KS_CLIENT_CONF" ]] || return 1
  timeout 30 "$JAVA" -Xms32m -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    -Dlog4j.configuration="file:$KAFKA_LOG4J" -Dkafka.logs.dir="$KS_LOGS_DIR/tools" \
    -cp "$KAFKA_LIBS/*" kafka.admin.BrokerApiVersionsCommand \
    --bootstrap-server "$KS_URL" --command-config "$KS_CLIENT_CONF" 2>/dev/null \
    | grep -q "(id: 1 rack"
}

ks_spawn() {
  local pid id
  if pid="$(ks_pid)"; then
    log "kafka-secure already running (pid $pid)"
    return 0
  fi
  rm -f "$KS_PID"
  if port_open "$KS_HOST" "$KS_PORT" || port_open "$KS_HOST" "$KS_CONTROLLER_PORT"; then
    die "port $KS_PORT or $KS_CONTROLLER_PORT on $KS_HOST is taken by a process this script did not start"
  fi
  kafka_ensure_tools
  kafka_ensure_libs
  ks_ensure_pki
  mkdir -p "$KS_DATA" "$KS_LOGS_DIR/tools"
  ks_write_config
  id=""
  if [[ -f "$KS_DATA/meta.properties" ]]; then
    id="$(sed -n 's/^cluster\.id=//p' "$KS_DATA/meta.properties" | head -n1)"
  fi
  if [[ -z "$id" ]]; then
    id="$("$JAVA" -cp "$KAFKA_LIBS/*" -Dlog4j.configuration="file:$KAFKA_LOG4J" \
      -Dkafka.logs.dir="$KS_LOGS_DIR/tools" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
    [[ -n "$id" ]] || die "kafka.tools.StorageTool random-uuid printed nothing"
  fi
  log "kafka-secure: formatting storage (cluster id $id) with the SCRAM users"
  "$JAVA" -cp "$KAFKA_LIBS/*" -Dlog4j.configuration="file:$KAFKA_LOG4J" \
    -Dkafka.logs.dir="$KS_LOGS_DIR/tools" kafka.tools.StorageTool format \
    -t "$id" -c "$KS_CONF" --ignore-formatted \
    --add-scram "SCRAM-SHA-512=[name=$KS_ADMIN_USER,password=$KS_ADMIN_PASSWORD]" \
    --add-scram "SCRAM-SHA-512=[name=$KS_USER,password=$KS_PASSWORD]" \
    --add-scram "SCRAM-SHA-256=[name=$KS_USER,password=$KS_PASSWORD]" \
    >>"$KS_LOG" 2>&1 || { tail -n 30 "$KS_LOG" >&2; die "kafka-secure storage format failed"; }

  log "starting kafka-secure on $KS_URL (SASL_SSL; log: $KS_LOG)"
  # setsid: outlives the shell or test that started it, like the plain broker.
  # shellcheck disable=SC2016,SC2086  # $0 is expanded by the inner bash; KS_HEAP is two flags
  setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$KS_PID" \
    "$JAVA" $KS_HEAP -XX:+UseSerialGC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$KAFKA_LOG4J" -Dkafka.logs.dir="$KS_LOGS_DIR" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KS_CONF" \
    >>"$KS_LOG" 2>&1 </dev/null &
  local _
  for _ in $(seq 1 50); do
    [[ -s "$KS_PID" ]] && break
    sleep 0.1
  done
  [[ -s "$KS_PID" ]] || die "kafka-secure did not write its pidfile"
}

ks_wait() {
  local deadline=$((SECONDS + KAFKA_READY_TIMEOUT)) pid
  while :; do
    if ! pid="$(ks_pid)"; then
      tail -n 40 "$KS_LOG" >&2 || true
      die "kafka-secure failed to start"
    fi
    if ks_answers; then
      log "kafka-secure ready (pid $pid)"
      return 0
    fi
    if (( SECONDS >= deadline )); then
      tail -n 40 "$KS_LOG" >&2 || true
      die "kafka-secure not ready within ${KAFKA_READY_TIMEOUT}s"
    fi
    sleep 1
  done
}

ks_stop() {
  local pid
  if ! pid="$(ks_pid)"; then
    rm -f "$KS_PID"
    return 0
  fi
  broker_kill kafka-secure "$pid"
  rm -f "$KS_PID"
  log "kafka-secure stopped"
}

# ---------------------------------------------------------------- postgresql

pg_ensure_installed() {
  if ! command -v pg_lsclusters >/dev/null 2>&1 || ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
    apt_install postgresql
  fi
}

# Version of the "main" cluster, else the newest installed server.
pg_version() {
  local v
  v="$(pg_lsclusters -h 2>/dev/null | awk -v c="$PG_CLUSTER" '$2 == c { print $1 }' | sort -V | tail -n1)"
  if [[ -z "$v" ]]; then
    v="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n1)"
  fi
  [[ -n "$v" ]] || return 1
  printf '%s\n' "$v"
}

# Prints the status column (online / down / ...) of cluster <ver> main, or nothing.
pg_cluster_field() {
  pg_lsclusters -h 2>/dev/null | awk -v v="$1" -v c="$PG_CLUSTER" -v f="$2" '$1 == v && $2 == c { print $f }'
}

pg_ready() {
  pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2 >/dev/null 2>&1
}

pg_login_ok() {
  PGPASSWORD="$PG_PASSWORD" PGCONNECT_TIMEOUT=5 psql -X -q -w -h "$PG_HOST" -p "$PG_PORT" \
    -U "$PG_USER" -d "$PG_DB" -tAc 'select 1' 2>/dev/null | grep -qx 1
}

pg_psql_admin() {
  as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres "$@"
}

pg_ensure_role_db() {
  if pg_login_ok; then
    return 0
  fi
  log "postgresql: ensuring role $PG_USER and database $PG_DB"
  pg_psql_admin -c "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
        CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
      ELSE
        ALTER ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
      END IF;
    END \$\$;" >&2
  if [[ "$(pg_psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]]; then
    pg_psql_admin -c "CREATE DATABASE $PG_DB OWNER $PG_USER" >&2
  fi
  if pg_login_ok; then
    return 0
  fi
  # Debian's default pg_hba.conf allows password logins from 127.0.0.1; if this one
  # does not, put a rule for our role/db in front and reload.
  local hba
  hba="$(pg_psql_admin -tAc 'SHOW hba_file')"
  log "postgresql: adding a password rule for $PG_USER from 127.0.0.1 to $hba"
  as_root sed -i "1i host $PG_DB $PG_USER 127.0.0.1/32 scram-sha-256" "$hba"
  pg_psql_admin -tAc 'SELECT pg_reload_conf()' >/dev/null
  sleep 1
  pg_login_ok || die "cannot log in as $PG_USER at $PG_URL"
}

pg_start() {
  pg_ensure_installed
  local ver status port
  ver="$(pg_version)" || die "no PostgreSQL server found under /usr/lib/postgresql"
  if [[ -z "$(pg_cluster_field "$ver" 2)" ]]; then
    log "creating postgresql $ver cluster $PG_CLUSTER on port $PG_PORT"
    as_root pg_createcluster --port "$PG_PORT" "$ver" "$PG_CLUSTER" >&2
  fi
  port="$(pg_cluster_field "$ver" 3)"
  [[ "$port" == "$PG_PORT" ]] || die "postgresql $ver/$PG_CLUSTER is configured for port $port, not $PG_PORT"
  status="$(pg_cluster_field "$ver" 4)"
  if [[ "$status" == online* ]]; then
    log "postgresql $ver/$PG_CLUSTER already online"
  elif pg_ready; then
    log "postgresql: a server not managed as $ver/$PG_CLUSTER already answers on $PG_HOST:$PG_PORT; using it"
  else
    log "starting postgresql $ver/$PG_CLUSTER on $PG_HOST:$PG_PORT"
    # The socket dir lives on tmpfs on some systems and may be gone after a reboot.
    as_root install -d -o postgres -g postgres -m 2775 /var/run/postgresql
    as_root pg_ctlcluster "$ver" "$PG_CLUSTER" start >&2
  fi
  local deadline=$((SECONDS + 60))
  until pg_ready; do
    (( SECONDS < deadline )) || die "postgresql not ready on $PG_HOST:$PG_PORT after 60s (see /var/log/postgresql/)"
    sleep 0.5
  done
  pg_ensure_role_db
  log "postgresql ready"
}

pg_stop() {
  local ver status
  if ! command -v pg_lsclusters >/dev/null 2>&1 || ! ver="$(pg_version)"; then
    log "postgresql not installed"
    return 0
  fi
  status="$(pg_cluster_field "$ver" 4)"
  if [[ "$status" == online* ]]; then
    log "stopping postgresql $ver/$PG_CLUSTER"
    as_root pg_ctlcluster "$ver" "$PG_CLUSTER" stop >&2
    log "postgresql stopped"
  elif pg_ready; then
    log "postgresql: a server not managed as $ver/$PG_CLUSTER answers on $PG_HOST:$PG_PORT; leaving it alone"
  else
    log "postgresql not running"
  fi
}

# ---------------------------------------------------------------- redis

redis_answers() {
  command -v redis-cli >/dev/null 2>&1 || return 1
  [[ "$(timeout 5 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]
}

redis_start() {
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    apt_install redis-server
  fi
  if redis_answers; then
    log "redis already answers on $REDIS_HOST:$REDIS_PORT"
    return 0
  fi
  log "starting redis on $REDIS_HOST:$REDIS_PORT (log: $REDIS_LOG)"
  redis-server --daemonize yes --port "$REDIS_PORT" --bind "$REDIS_HOST" \
    --save "" --appendonly no --dir "$STACK_DIR" \
    --pidfile "$REDIS_PID" --logfile "$REDIS_LOG" </dev/null >&2
  local deadline=$((SECONDS + 30))
  until redis_answers; do
    if (( SECONDS >= deadline )); then
      tail -n 20 "$REDIS_LOG" >&2 || true
      die "redis did not answer PONG within 30s"
    fi
    sleep 0.2
  done
  log "redis ready"
}

redis_stop() {
  if ! redis_answers; then
    log "redis not running"
    rm -f "$REDIS_PID"
    return 0
  fi
  log "stopping redis"
  timeout 10 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  local deadline=$((SECONDS + 15))
  while redis_answers; do
    (( SECONDS < deadline )) || die "redis still answers after shutdown"
    sleep 0.2
  done
  rm -f "$REDIS_PID"
  log "redis stopped"
}

# ---------------------------------------------------------------- commands

want() {  # want <service>: is it among the selected ones?
  local s
  for s in "${SERVICES[@]}"; do [[ "$s" == "$1" ]] && return 0; done
  return 1
}

cmd_up() {
  mkdir -p "$STACK_DIR"
  # Kafka's JVM takes a while: spawn it first, bring up the others, then wait for it.
  want kafka && kafka_spawn
  want kafka-secure && ks_spawn
  want postgres && pg_start
  want redis && redis_start
  want kafka && kafka_wait
  want kafka-secure && ks_wait
  want kafka && echo "kafka $KAFKA_URL"
  want kafka-secure && echo "kafka-secure $KS_URL $KS_CLIENT_ENV"
  want postgres && echo "postgresql $PG_URL"
  want redis && echo "redis $REDIS_URL"
  return 0
}

cmd_down() {
  want kafka && kafka_stop
  { want kafka-secure || [[ $ALL -eq 1 ]]; } && ks_stop
  want redis && redis_stop
  want postgres && pg_stop
  if [[ $PURGE -eq 1 ]] && want kafka; then
    log "purging $KAFKA_DATA"
    rm -rf "$KAFKA_DATA"
  fi
  if [[ $PURGE -eq 1 ]] && { want kafka-secure || [[ $ALL -eq 1 ]]; }; then
    log "purging $KS_DATA"
    rm -rf "$KS_DATA"
  fi
  return 0
}

cmd_status() {
  local rc=0
  if want kafka; then
    if kafka_answers; then echo "kafka up $KAFKA_URL"; else echo "kafka down $KAFKA_URL"; rc=1; fi
  fi
  if want kafka-secure; then
    if ks_answers; then echo "kafka-secure up $KS_URL"; else echo "kafka-secure down $KS_URL"; rc=1; fi
  fi
  if want postgres; then
    if pg_ready && pg_login_ok; then echo "postgresql up $PG_URL"
    elif pg_ready; then echo "postgresql up-but-login-fails $PG_URL"; rc=1
    else echo "postgresql down $PG_URL"; rc=1; fi
  fi
  if want redis; then
    if redis_answers; then echo "redis up $REDIS_URL"; else echo "redis down $REDIS_URL"; rc=1; fi
  fi
  return $rc
}

[[ $# -ge 1 ]] || usage
CMD="$1"; shift
PURGE=0
SERVICES=()
for arg in "$@"; do
  case "$arg" in
    --purge) PURGE=1 ;;
    kafka) SERVICES+=(kafka) ;;
    postgres|postgresql|pg) SERVICES+=(postgres) ;;
    redis) SERVICES+=(redis) ;;
    kafka-secure) SERVICES+=(kafka-secure) ;;
    -h|--help) usage ;;
    *) die "unknown argument: $arg (services: kafka, postgres, redis, kafka-secure)" ;;
  esac
done
ALL=0
if [[ ${#SERVICES[@]} -eq 0 ]]; then
  SERVICES=(kafka postgres redis)
  ALL=1
fi
[[ $PURGE -eq 0 || "$CMD" == down ]] || die "--purge only goes with down"

case "$CMD" in
  up|down)
    # One up/down at a time (several engineers/CI steps may call this at once). flock -o
    # keeps the lock fd out of the re-executed script, so the daemons it starts do not
    # inherit it and hold the lock forever.
    mkdir -p "$STACK_DIR"
    if [[ -z "${_STACK_LOCKED:-}" ]] && command -v flock >/dev/null 2>&1; then
      _STACK_LOCKED=1 exec flock -o -w 600 "$STACK_DIR/stack.lock" "${BASH_SOURCE[0]}" "$CMD" "$@"
    fi
    "cmd_$CMD"
    ;;
  status) cmd_status ;;
  *) usage ;;
esac
