#!/usr/bin/env bash
# Durability under failure, as CI proves it on every run:
#  1. kill -9 the server under load (SQLite, and PostgreSQL when FUNCTIONARY_TEST_DATABASE_URL is
#     set): after a restart every acknowledged identify and event is there, exactly once;
#  2. stop PostgreSQL under load: requests answer 503 with Retry-After within a second (none hang),
#     /readyz fails, and the server recovers by itself when PostgreSQL is back.
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=target/debug/functionary
[ -x "$bin" ] || cargo build -q -p functionary
work=target/ci-durability
rm -rf "$work" && mkdir -p "$work"
export FUNCTIONARY_JWT_SECRET="durability-check-secret-0123456789abcdef"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
server_pid=""

start_server() {
  "$bin" serve --database "$1" --tenants tenants.example --listen "127.0.0.1:$port" >>"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    curl -fs "127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "FAIL: the server did not start"; tail -20 "$work/server.log"; exit 1
}

pg_version=""
cleanup() {
  [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
  # Never leave the machine's PostgreSQL stopped.
  if [ -n "$pg_version" ]; then pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start 2>/dev/null || true; fi
}
trap cleanup EXIT

crash_check() {
  local label=$1 db=$2 acks="$work/acks-$1"
  echo "== kill -9 under load: $label"
  start_server "$db"
  local key
  key=$("$bin" keys issue --tenant acme --database "$db")
  python3 ci/durability/load.py load "$port" "$key" 4 8 "$acks" "crash-$label-$$" >"$work/load-$label.json" &
  local load_pid=$!
  sleep 2
  kill -9 "$server_pid"
  wait "$load_pid" || true
  echo "killed the server mid-load; client saw: $(cat "$work/load-$label.json")"
  start_server "$db"
  python3 ci/durability/load.py verify "$port" "$key" "$acks"
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
}

crash_check sqlite "sqlite://$work/crash.db"

pg_url="${FUNCTIONARY_TEST_DATABASE_URL:-}"
if [ -z "$pg_url" ]; then
  [ -n "${CI:-}" ] && { echo "FAIL: CI needs FUNCTIONARY_TEST_DATABASE_URL"; exit 1; }
  echo "PostgreSQL checks skipped: FUNCTIONARY_TEST_DATABASE_URL is not set"
  exit 0
fi
crash_check postgres "$pg_url"

echo "== PostgreSQL stopped under load"
pg_version=$(ls /etc/postgresql | head -n 1)
start_server "$pg_url"
key=$("$bin" keys issue --tenant acme --database "$pg_url")
python3 ci/durability/load.py load "$port" "$key" 8 8 "$work/acks-outage" "outage-$$" >"$work/load-outage.json" &
load_pid=$!
sleep 2
pg_ctlcluster --skip-systemctl-redirect "$pg_version" main stop -m fast
sleep 1
ready=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "127.0.0.1:$port/readyz" || true)
echo "/readyz while PostgreSQL is down: $ready"
[ "$ready" = "503" ] || { echo "FAIL: /readyz answered $ready, not 503"; exit 1; }
sleep 2
pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start
pg_version=""
wait "$load_pid"
summary=$(cat "$work/load-outage.json")
echo "client during the outage: $summary"
python3 - "$summary" <<'PY'
import json, sys
summary = json.loads(sys.argv[1])
statuses = summary["statuses"]
bad = {status: count for status, count in statuses.items() if status not in ("200", "503")}
assert not bad, f"answers other than 200/503 during the outage (0 = no answer): {bad}"
assert statuses.get("503", 0) > 0, "no request met the outage"
assert summary["slowest_seconds"] < 1.0, f"a request took {summary['slowest_seconds']} s"
print(f"outage: {statuses.get('503', 0)} requests answered 503 with Retry-After, slowest {summary['slowest_seconds']} s")
PY
for _ in $(seq 1 50); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "127.0.0.1:$port/readyz")" = "200" ] && break
  sleep 0.2
done
echo "/readyz after PostgreSQL is back: $(curl -s -o /dev/null -w '%{http_code}' "127.0.0.1:$port/readyz")"
python3 ci/durability/load.py verify "$port" "$key" "$work/acks-outage"
