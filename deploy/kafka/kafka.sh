#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, combined broker + controller) for development, tests, CI and
# the demo. Jars come from Maven Central through deploy/kafka/pom.xml; no Docker, no download
# of a Kafka distribution.
#
#   deploy/kafka/kafka.sh start     start (or reuse) the broker; waits for a real round trip
#   deploy/kafka/kafka.sh stop      SIGTERM, then SIGKILL after KAFKA_STOP_TIMEOUT; idempotent
#   deploy/kafka/kafka.sh restart   stop + start on the same data (topics, offsets survive)
#   deploy/kafka/kafka.sh status    exit 0 if running and answering, 1 if running but not
#                                   answering, 3 if not running
#   deploy/kafka/kafka.sh logs [-f] [N]   last N (100) lines of the broker log
#   deploy/kafka/kafka.sh jars      only resolve the jars (e.g. to warm a CI cache)
#   deploy/kafka/kafka.sh reset     stop and delete all data (next start formats afresh)
#   deploy/kafka/kafka.sh bootstrap print the client bootstrap address
#   deploy/kafka/kafka.sh client-config USER   (secured mode) print USER's kafka-python settings
#
# Secured mode (KAFKA_SECURE=1): one SASL_SSL listener with SCRAM-SHA-512 on KAFKA_PORT, a
# self-signed CA and a broker certificate for 127.0.0.1/localhost made with keytool at the first
# start, SCRAM users created when the storage is formatted, StandardAuthorizer with ACLs created
# by acls.py after every start. Users (passwords random per data dir, in secure/users.json):
#   admin    super user (the broker itself, topic set-up in tests)
#   driftline  the sidecar: only the ACLs it needs (README "Secured Kafka"), nothing else
#   driftline-alo  the sidecar in at-least-once mode: the same without the transactional id
#   reader   alerts tail, pipeline.subscribe and backtests: READ on the topics, no group
# Client settings per user: $KAFKA_DATA_DIR/secure/USER.json (kafka-python keyword arguments).
#
# Environment:
#   KAFKA_PORT             client listener on 127.0.0.1 (39092)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener on 127.0.0.1 (39093)
#   KAFKA_DATA_DIR         data, config, pid and log (deploy/kafka/var; secured: var-secure)
#   KAFKA_SECURE           1: the secured broker described above (0)
#   KAFKA_START_TIMEOUT    seconds to wait for the first round trip (90)
#   KAFKA_STOP_TIMEOUT     seconds between SIGTERM and SIGKILL (30)
#   KAFKA_HEAP_OPTS        JVM heap flags (-Xms256m -Xmx512m)
#   KAFKA_JVM_OPTS         extra JVM flags
#   KAFKA_LOG_LEVEL        root log level of the broker (INFO)
#   KAFKA_CDS              1: keep a class-data-sharing archive of the broker's classes (made at
#                          the first graceful stop, in target/cds) for a ~1.5 s faster start; 0: off
#   PYTHON                 interpreter with kafka-python for the round trip (<repo>/.venv/bin/python)
#   MVN                    maven command (mvn)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

KAFKA_PORT="${KAFKA_PORT:-39092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-39093}"
KAFKA_SECURE="${KAFKA_SECURE:-0}"
if [[ "$KAFKA_SECURE" == 1 ]]; then
  KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-$HERE/var-secure}"
else
  KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-$HERE/var}"
fi
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:-}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
MVN="${MVN:-mvn}"
JAVA="${JAVA:-java}"
KAFKA_CDS="${KAFKA_CDS:-1}"

mkdir -p "$KAFKA_DATA_DIR"
KAFKA_DATA_DIR="$(cd "$KAFKA_DATA_DIR" && pwd)"
LIB_DIR="$HERE/target/lib"
STAMP="$LIB_DIR/.pom.sha256"
CDS_DIR="$HERE/target/cds"
CONF="$KAFKA_DATA_DIR/server.properties"
PID_FILE="$KAFKA_DATA_DIR/kafka.pid"
LOG_FILE="$KAFKA_DATA_DIR/kafka.log"
LOG_DIRS="$KAFKA_DATA_DIR/data"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
SECURE_DIR="$KAFKA_DATA_DIR/secure"
SECURE_USERS=(admin driftline driftline-alo reader)

say() { printf 'kafka.sh: %s\n' "$*"; }
err() { printf 'kafka.sh: %s\n' "$*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# One start/stop at a time per data dir (parallel test sessions, two terminals).
lock() {
  exec 9>"$KAFKA_DATA_DIR/.lock"
  if ! flock -w 300 9; then
    err "another kafka.sh holds $KAFKA_DATA_DIR/.lock"
    exit 1
  fi
}

# PID of our broker if it runs, else empty. Checks the command line so that a recycled pid
# is not mistaken for the broker.
broker_pid() {
  [[ -f "$PID_FILE" ]] || return 0
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  [[ -r "/proc/$pid/cmdline" ]] || return 0
  # Read whole, then match: `tr | grep -q` under pipefail fails when grep quits before tr
  # has written the (long, classpath-laden) command line.
  local cmdline
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  if [[ "$cmdline" == *"-Ddriftline.kafka.dir=$KAFKA_DATA_DIR "* ]]; then
    local state
    state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
    [[ "$state" == "Z" ]] || echo "$pid"
  fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

roundtrip() { # roundtrip TIMEOUT [PID]
  if [[ ! -x "$PYTHON" ]] && ! command -v "$PYTHON" >/dev/null 2>&1; then
    err "no Python at $PYTHON (set PYTHON to an interpreter with kafka-python)"
    return 2
  fi
  local args=(--bootstrap "$BOOTSTRAP" --timeout "$1" --quiet)
  [[ "$KAFKA_SECURE" == 1 ]] && args+=(--client-config "$SECURE_DIR/admin.json")
  [[ -n "${2:-}" ]] && args+=(--pid "$2")
  "$PYTHON" "$HERE/roundtrip.py" "${args[@]}"
}

show_log_tail() {
  if [[ -f "$LOG_FILE" ]]; then
    err "last lines of $LOG_FILE:"
    tail -n "${1:-40}" "$LOG_FILE" | sed 's/^/    /' >&2
  fi
}

# ---------------------------------------------------------------------------------------------
# Jars: mvn only when target/lib does not match the pom (hash in a stamp file).
ensure_jars() {
  local want have=""
  want="$(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)"
  [[ -f "$STAMP" ]] && have="$(cat "$STAMP")"
  if [[ "$want" == "$have" ]] && compgen -G "$LIB_DIR/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  command -v "$MVN" >/dev/null 2>&1 || { err "maven ($MVN) not found"; return 1; }
  # target/ is shared by every data dir: one Maven run at a time.
  mkdir -p "$HERE/target"
  exec 8>"$HERE/target/.jars.lock"
  flock -w 600 8 || { err "another kafka.sh is resolving the jars"; return 1; }
  [[ -f "$STAMP" ]] && have="$(cat "$STAMP")"
  if [[ "$want" == "$have" ]]; then exec 8>&-; return 0; fi
  say "resolving Kafka jars with Maven (cached in ~/.m2 after the first time)"
  rm -rf "$LIB_DIR" "$CDS_DIR"
  local t0 mlog="$KAFKA_DATA_DIR/mvn.log"
  t0="$(now)"
  # Maven 3.8 prints stray colour codes even with -q -B: keep its output in a file.
  if ! "$MVN" -q -B -f "$HERE/pom.xml" package >"$mlog" 2>&1; then
    err "maven failed; its output:"
    sed 's/^/    /' "$mlog" >&2
    return 1
  fi
  echo "$want" >"$STAMP"
  exec 8>&-
  say "jars ready in $(since "$t0")s ($(find "$LIB_DIR" -name '*.jar' | wc -l) in ${LIB_DIR#"$REPO"/})"
}

# ---------------------------------------------------------------------------------------------
# Secured mode: keystores, users and client settings, made once per data dir.
password() { head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }

user_password() { # user_password USER (from secure/users.json)
  "$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
    "$SECURE_DIR/users.json" "$1"
}

# A CA and a broker certificate (SAN 127.0.0.1 and localhost) with keytool only (it comes with
# Java; openssl is not needed). The CA's certificate is what clients trust (secure/ca.pem).
ensure_keystores() {
  [[ -s "$SECURE_DIR/broker.p12" && -s "$SECURE_DIR/truststore.p12" ]] && return 0
  command -v keytool >/dev/null 2>&1 || { err "keytool (from the JDK) not found"; return 1; }
  local t0 sp d="$SECURE_DIR" kt=(keytool -noprompt -storetype PKCS12)
  t0="$(now)"
  rm -f "$d"/*.p12 "$d"/*.pem "$d"/*.csr "$d/store.password"
  sp="$(password)"
  (umask 077 && printf '%s' "$sp" >"$d/store.password")
  {
    "${kt[@]}" -genkeypair -alias ca -dname "CN=driftline local dev CA" -keyalg RSA -keysize 2048 \
      -validity 3650 -ext bc:c -keystore "$d/ca.p12" -storepass "$sp"
    "${kt[@]}" -exportcert -rfc -alias ca -keystore "$d/ca.p12" -storepass "$sp" -file "$d/ca.pem"
    "${kt[@]}" -genkeypair -alias broker -dname "CN=localhost" -keyalg RSA -keysize 2048 \
      -validity 3650 -keystore "$d/broker.p12" -storepass "$sp"
    "${kt[@]}" -certreq -alias broker -keystore "$d/broker.p12" -storepass "$sp" -file "$d/broker.csr"
    "${kt[@]}" -gencert -rfc -alias ca -keystore "$d/ca.p12" -storepass "$sp" -validity 3650 \
      -ext "SAN=ip:127.0.0.1,dns:localhost" -infile "$d/broker.csr" -outfile "$d/broker.pem"
    "${kt[@]}" -importcert -alias ca -file "$d/ca.pem" -keystore "$d/broker.p12" -storepass "$sp"
    "${kt[@]}" -importcert -alias broker -file "$d/broker.pem" -keystore "$d/broker.p12" -storepass "$sp"
    "${kt[@]}" -importcert -alias ca -file "$d/ca.pem" -keystore "$d/truststore.p12" -storepass "$sp"
  } >"$d/keytool.log" 2>&1 || { err "keytool failed:"; sed 's/^/    /' "$d/keytool.log" >&2; return 1; }
  chmod 600 "$d"/*.p12
  say "made a CA and the broker certificate in $(since "$t0")s (${d#"$REPO"/})"
}

# users.json (passwords) and USER.json (kafka-python settings) for every user, 0600.
ensure_users() {
  [[ -s "$SECURE_DIR/users.json" ]] && return 0
  local u first=1
  (
    umask 077
    {
      printf '{'
      for u in "${SECURE_USERS[@]}"; do
        [[ $first == 1 ]] || printf ', '
        first=0
        printf '"%s": "%s"' "$u" "$(password)"
      done
      printf '}\n'
    } >"$SECURE_DIR/users.json"
    for u in "${SECURE_USERS[@]}"; do
      cat >"$SECURE_DIR/$u.json" <<EOF
{"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
 "sasl_plain_username": "$u", "sasl_plain_password": "$(user_password "$u")",
 "ssl_cafile": "$SECURE_DIR/ca.pem", "ssl_check_hostname": true}
EOF
    done
  )
}

ensure_secure() {
  [[ "$KAFKA_SECURE" == 1 ]] || return 0
  mkdir -p "$SECURE_DIR"
  chmod 700 "$SECURE_DIR"
  ensure_keystores
  ensure_users
}

listener_config() {
  if [[ "$KAFKA_SECURE" != 1 ]]; then
    cat <<EOF
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
EOF
    return 0
  fi
  local sp
  sp="$(cat "$SECURE_DIR/store.password")"
  # The controller listener stays PLAINTEXT on 127.0.0.1: the broker reaches its own controller
  # there as ANONYMOUS, which must therefore be a super user (clients use the SASL_SSL listener).
  cat <<EOF
listeners=SASL_SSL://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_SSL://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(user_password admin)";
ssl.keystore.type=PKCS12
ssl.keystore.location=$SECURE_DIR/broker.p12
ssl.keystore.password=$sp
ssl.key.password=$sp
ssl.truststore.type=PKCS12
ssl.truststore.location=$SECURE_DIR/truststore.p12
ssl.truststore.password=$sp
ssl.endpoint.identification.algorithm=https
ssl.client.auth=none
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
EOF
}

write_config() {
  (umask 077 && cat >"$CONF" <<EOF
# Written by deploy/kafka/kafka.sh on each start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
$(listener_config)
log.dirs=$LOG_DIRS

# single node: every internal topic with one replica
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1

# development defaults
auto.create.topics.enable=true
num.partitions=1
delete.topic.enable=true
group.initial.rebalance.delay.ms=0
# After a SIGKILL the controller waits one broker session before it accepts the broker again
# (DuplicateBrokerRegistrationException until then): keep that shortish (default 9 s; a loaded
# 2-core machine must still not miss 6 heartbeats in a row).
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=6000
# 1 MiB messages (plus batch overhead) must go through
message.max.bytes=2097152
replica.fetch.max.bytes=2097152
# small machine (2 cores): few threads
num.network.threads=2
num.io.threads=4
background.threads=4
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=16777216
# keep a dev broker's disk small
log.retention.hours=24
log.segment.bytes=67108864
EOF
  )
}

ensure_formatted() {
  if [[ -f "$LOG_DIRS/meta.properties" ]]; then
    return 0
  fi
  local cid t0
  # A KRaft cluster id is 16 random bytes in url-safe base64 without padding (22 chars).
  # Kafka itself avoids ids that start with '-' (they read like command-line options).
  cid="-"
  while [[ "$cid" == -* ]]; do
    cid="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  done
  t0="$(now)"
  mkdir -p "$LOG_DIRS"
  local scram=() u
  if [[ "$KAFKA_SECURE" == 1 ]]; then  # SCRAM users go into the metadata log at format time
    for u in "${SECURE_USERS[@]}"; do
      scram+=(--add-scram "SCRAM-SHA-512=[name=$u,password=$(user_password "$u")]")
    done
  fi
  if ! "$JAVA" -cp "$LIB_DIR/*" -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
      -Ddriftline.kafka.loglevel=WARN kafka.tools.StorageTool format \
      --config "$CONF" --cluster-id "$cid" --ignore-formatted "${scram[@]}" \
      >"$KAFKA_DATA_DIR/format.log" 2>&1; then
    err "formatting storage failed:"
    sed 's/^/    /' "$KAFKA_DATA_DIR/format.log" >&2
    return 1
  fi
  say "formatted $LOG_DIRS (cluster id $cid) in $(since "$t0")s"
}

# Class-data sharing (JDK 17 dynamic archive): the first broker run records the classes it loaded
# at exit into *.jsa.tmp; a graceful stop promotes it; later starts map it instead of parsing and
# verifying those classes again. The key covers the jars and the JVM build, so a new JDK or pom
# makes a new archive.
cds_flags() {
  [[ "$KAFKA_CDS" == 1 ]] || return 0
  local key
  key="$({ cat "$STAMP"; "$JAVA" -version 2>&1; } | sha256sum | cut -c1-16)"
  mkdir -p "$CDS_DIR"
  if [[ -s "$CDS_DIR/$key.jsa" ]]; then
    echo "-XX:SharedArchiveFile=$CDS_DIR/$key.jsa"
  else
    rm -f "$CDS_DIR"/*.jsa.tmp
    echo "-XX:ArchiveClassesAtExit=$CDS_DIR/$key.jsa.tmp"
  fi
}

promote_cds() { # after a graceful exit only: a killed JVM may leave half an archive
  local tmp
  for tmp in "$CDS_DIR"/*.jsa.tmp; do
    [[ -s "$tmp" ]] || continue
    find "$CDS_DIR" -name '*.jsa' -delete
    mv -f "$tmp" "${tmp%.tmp}"
  done
}

launch() {
  [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
  # setsid + nohup: the broker outlives the shell (and the pytest process) that started it.
  # 8>&- 9>&-: it must not inherit the locks. stdin/stdout/stderr away from the caller's pipes, or
  # `subprocess.run(..., capture_output=True)` would wait for the broker to exit.
  # shellcheck disable=SC2086
  nohup setsid "$JAVA" \
    $KAFKA_HEAP_OPTS \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -XX:-OmitStackTraceInFastThrow \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
    -Ddriftline.kafka.loglevel="${KAFKA_LOG_LEVEL:-INFO}" \
    -Ddriftline.kafka.dir="$KAFKA_DATA_DIR" \
    $(cds_flags) \
    $KAFKA_JVM_OPTS \
    -cp "$LIB_DIR/*" kafka.Kafka "$CONF" \
    </dev/null >"$LOG_FILE" 2>&1 8>&- 9>&- &
  echo $! >"$PID_FILE"
}

cmd_start() {
  local t0 pid
  t0="$(now)"
  lock
  pid="$(broker_pid)"
  if [[ -n "$pid" ]]; then
    if roundtrip "$KAFKA_START_TIMEOUT" "$pid"; then
      say "already running (pid $pid), answering at $BOOTSTRAP (checked in $(since "$t0")s)"
      echo "bootstrap: $BOOTSTRAP"
      return 0
    fi
    err "broker pid $pid runs but gives no round trip at $BOOTSTRAP"
    show_log_tail
    return 1
  fi
  if port_open "$KAFKA_PORT"; then
    # Something else listens there: reuse it only if it is a working Kafka.
    if roundtrip 15; then
      say "a broker not started by this script answers at $BOOTSTRAP; reusing it"
      echo "bootstrap: $BOOTSTRAP"
      return 0
    fi
    err "port $KAFKA_PORT is taken by something that is not a working Kafka broker"
    return 1
  fi
  if port_open "$KAFKA_CONTROLLER_PORT"; then
    err "controller port $KAFKA_CONTROLLER_PORT is taken (set KAFKA_CONTROLLER_PORT)"
    return 1
  fi
  if ! "$PYTHON" -c 'import kafka' >/dev/null 2>&1; then
    err "$PYTHON cannot import kafka-python, which the start-up check needs (set PYTHON)"
    return 1
  fi
  ensure_jars
  ensure_secure
  write_config
  ensure_formatted
  launch
  pid="$(cat "$PID_FILE")"
  local rc=0
  roundtrip "$KAFKA_START_TIMEOUT" "$pid" || rc=$?
  if [[ $rc -ne 0 ]]; then
    case $rc in
      3) err "broker exited during startup" ;;
      1) err "broker gave no round trip within ${KAFKA_START_TIMEOUT}s" ;;
      *) err "the health check could not run (roundtrip.py exit $rc)" ;;
    esac
    show_log_tail 60
    stop_pid "$pid" >/dev/null 2>&1 || true
    rm -f "$PID_FILE"
    return 1
  fi
  if [[ "$KAFKA_SECURE" == 1 ]] && ! "$PYTHON" "$HERE/acls.py" --bootstrap "$BOOTSTRAP" \
      --client-config "$SECURE_DIR/admin.json"; then
    err "creating the ACLs failed"
    return 1
  fi
  say "started (pid $pid) in $(since "$t0")s; log: $LOG_FILE"
  echo "bootstrap: $BOOTSTRAP"
}

stop_pid() { # stop_pid PID: SIGTERM, wait KAFKA_STOP_TIMEOUT, SIGKILL
  local pid="$1" waited=0 step=0.2 limit
  kill -TERM "$pid" 2>/dev/null || return 0
  limit=$(awk -v t="$KAFKA_STOP_TIMEOUT" -v s="$step" 'BEGIN { printf "%d", t / s }')
  while kill -0 "$pid" 2>/dev/null && [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ]]; do
    if (( waited >= limit )); then
      err "pid $pid still alive after ${KAFKA_STOP_TIMEOUT}s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      rm -f "$CDS_DIR"/*.jsa.tmp
      return 1
    fi
    sleep "$step"
    waited=$((waited + 1))
  done
}

cmd_stop() {
  local t0 pid
  t0="$(now)"
  lock
  pid="$(broker_pid)"
  if [[ -z "$pid" ]]; then
    rm -f "$PID_FILE"
    if port_open "$KAFKA_PORT"; then
      say "not running from $KAFKA_DATA_DIR (port $KAFKA_PORT is served by another process)"
    else
      say "not running"
    fi
    return 0
  fi
  if stop_pid "$pid"; then
    promote_cds
  fi
  rm -f "$PID_FILE"
  say "stopped (pid $pid) in $(since "$t0")s"
}

cmd_status() {
  local pid
  pid="$(broker_pid)"
  if [[ -z "$pid" ]]; then
    say "not running (data: $KAFKA_DATA_DIR)"
    return 3
  fi
  if roundtrip "${1:-15}" "$pid"; then
    say "running (pid $pid) and answering at $BOOTSTRAP"
    return 0
  fi
  say "running (pid $pid) but not answering at $BOOTSTRAP"
  return 1
}

cmd_logs() {
  [[ -f "$LOG_FILE" ]] || { err "no log at $LOG_FILE"; return 1; }
  local follow="" n=100
  for a in "$@"; do
    case "$a" in
      -f|--follow) follow=1 ;;
      *) n="$a" ;;
    esac
  done
  if [[ -n "$follow" ]]; then tail -n "$n" -F "$LOG_FILE"; else tail -n "$n" "$LOG_FILE"; fi
}

cmd_reset() {
  cmd_stop
  rm -rf "$LOG_DIRS" "$CONF" "$LOG_FILE" "$LOG_FILE.1" "$KAFKA_DATA_DIR/format.log" "$SECURE_DIR"
  say "data removed ($LOG_DIRS)"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  status) shift; cmd_status "$@" ;;
  logs) shift; cmd_logs "$@" ;;
  jars) lock; ensure_jars ;;
  reset) cmd_reset ;;
  bootstrap) echo "$BOOTSTRAP" ;;
  client-config)
    [[ "$KAFKA_SECURE" == 1 ]] || { err "client-config: only in secured mode (KAFKA_SECURE=1)"; exit 2; }
    cat "$SECURE_DIR/${2:-driftline}.json" ;;
  *)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
    [[ "${1:-}" == "-h" || "${1:-}" == "--help" || "${1:-}" == "help" ]] && exit 0
    exit 2
    ;;
esac
