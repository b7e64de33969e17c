#!/usr/bin/env bash
# Proves that Python clients generated from `functionary openapi` work against a live server:
#   (a) openapi-python-client   (b) openapi-generator's `python` generator (the bundled jar, on Java 17)
# Everything it makes lives under target/ci-python/ (venv, spec, clients, database).
# Usage: bash ci/python-clients/run.sh        (exit 0 when both scenarios pass)
set -euo pipefail
cd "$(dirname "$0")/../.."

here=ci/python-clients
work=target/ci-python
venv=$work/venv
py=$venv/bin/python
bin=target/debug/functionary
# A fixed, test-only signing secret (40 characters); never used outside this script's server.
export FUNCTIONARY_JWT_SECRET="ci-python-clients-test-secret-0123456789"
db_url="sqlite://$work/db/functionary.db"

started=$(date +%s)
step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; exit 1; }

# ---------------------------------------------------------------------------------------------
step "venv $venv with the pinned generators ($here/requirements.txt)"
mkdir -p "$work"
if [ ! -x "$py" ]; then
  python3 -m venv "$venv" || fail "could not create the venv at $venv"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Pinned (==) requirements that are already installed are not fetched again: reruns stay offline.
"$py" -m pip install -q -r "$here/requirements.txt" || fail "pip could not install $here/requirements.txt"
# The generators run their post-hooks (ruff) and the jar from the venv; Java comes from the machine.
export PATH="$PWD/$venv/bin:$PATH"
command -v java >/dev/null || fail "java is not on PATH (openapi-generator-cli needs a Java 11+ runtime)"
echo "openapi-python-client $(openapi-python-client --version 2>/dev/null | awk '{print $NF}')," \
  "openapi-generator $(openapi-generator-cli version 2>/dev/null | tail -n 1)," \
  "java $(java -version 2>&1 | awk -F'"' 'NR==1 {print $2}')"

# ---------------------------------------------------------------------------------------------
step "OpenAPI document from $bin"
if [ ! -x "$bin" ]; then
  echo "$bin is missing: cargo build -q -p functionary"
  cargo build -q -p functionary || fail "cargo build -p functionary failed"
fi
"$bin" openapi > "$work/openapi.json" || fail "'$bin openapi' failed"
"$py" -c 'import json, sys; d = json.load(open(sys.argv[1])); print("spec:", sys.argv[1], "openapi", d["openapi"], "-", len(d["paths"]), "paths,", len(d["components"]["schemas"]), "schemas")' "$work/openapi.json" \
  || fail "$work/openapi.json is not JSON"

# Runs a generator with its output in a log; fails the script when the generator fails, and prints
# every warning it emitted (each is a finding about the spec or the generator: read them).
run_generator() {
  local name=$1 log=$2
  shift 2
  if ! "$@" >"$log" 2>&1; then
    cat "$log"
    fail "$name failed (log: $log)"
  fi
}

# ---------------------------------------------------------------------------------------------
step "generate (a): openapi-python-client -> $work/opc-client"
run_generator openapi-python-client "$work/opc-generate.log" \
  openapi-python-client generate --path "$work/openapi.json" --output-path "$work/opc-client" \
  --meta setup --overwrite
# Anything it says beyond "Generating PATH" is a warning (e.g. an endpoint it skipped): show it.
opc_said=$(grep -v -e '^[[:space:]]*$' -e '^Generating ' -e 'If you believe this was a mistake' \
  "$work/opc-generate.log" || true)
if [ -n "$opc_said" ]; then
  echo "openapi-python-client warnings:"
  while IFS= read -r line; do printf '  | %s\n' "$line"; done <<<"$opc_said"
else
  echo "openapi-python-client: no warnings"
fi
[ -f "$work/opc-client/functionary_client/api/ingest/identify.py" ] \
  || fail "openapi-python-client generated no identify endpoint"

step "generate (b): openapi-generator python -> $work/oag-client"
rm -rf "$work/oag-client"
run_generator openapi-generator "$work/oag-generate.log" \
  openapi-generator-cli generate --input-spec "$work/openapi.json" --generator-name python \
  --output "$work/oag-client" --package-name functionary_oag \
  --additional-properties=projectName=functionary-oag,packageVersion=0.1.0
if grep -E '\b(WARN|ERROR)\b' "$work/oag-generate.log" >/dev/null; then
  echo "openapi-generator warnings:"
  # "Failed to get the schema name: null" is the generator's own: 7.26.0 prints it for any spec
  # with an object schema (a one-schema spec shows it too), so it says nothing about ours.
  grep -E '\b(WARN|ERROR)\b' "$work/oag-generate.log" \
    | sed -e 's/^/  | /' -e 's/Failed to get the schema name: null$/& (generator-internal, printed for any spec)/'
else
  echo "openapi-generator: no warnings"
fi
[ -f "$work/oag-client/functionary_oag/api/ingest_api.py" ] \
  || fail "openapi-generator generated no ingest API"

step "install both generated clients into the venv"
# --no-build-isolation: build with the venv's setuptools instead of fetching one per run.
"$py" -m pip install -q --no-build-isolation --force-reinstall --no-deps "./$work/opc-client" "./$work/oag-client" \
  || fail "pip could not install the generated clients"
# Their runtime dependencies are pinned in requirements.txt; pip check proves none is missing.
"$py" -m pip check >/dev/null || { "$py" -m pip check; fail "the generated clients' dependencies are not satisfied in the venv"; }
"$py" -c 'import functionary_client, functionary_oag; print("importable: functionary_client, functionary_oag")' \
  || fail "a generated client does not import"

# ---------------------------------------------------------------------------------------------
step "server on a free port with a fresh database"
rm -rf "$work/db"
mkdir -p "$work/db"
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
base_url="http://127.0.0.1:$port"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# NO_COLOR: the text log writes ANSI colours even into a file otherwise.
NO_COLOR=1 "$bin" serve --database "$db_url" --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server_pid=$!
ready=""
for _ in $(seq 1 100); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat "$work/server.log"
    fail "the server exited before answering /healthz"
  fi
  if "$py" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=1)' "$base_url" 2>/dev/null; then
    ready=yes
    break
  fi
  sleep 0.2
done
[ -n "$ready" ] || { cat "$work/server.log"; fail "no answer on $base_url/healthz after 20 s"; }
echo "server pid $server_pid answers on $base_url (log: $work/server.log)"
admin_token=$("$bin" token admin --database "$db_url") || fail "'functionary token admin' failed"
[ -n "$admin_token" ] || fail "'functionary token admin' printed nothing"

# ---------------------------------------------------------------------------------------------
passed=0
failed=0
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ next to the scenarios in the work tree
for scenario in scenario_openapi_python_client scenario_openapi_generator; do
  step "$scenario.py"
  if ! "$py" "$here/$scenario.py" "$base_url" "$admin_token" | tee "$work/$scenario.log"; then
    failed=$((failed + 1))
    echo "FAIL: $here/$scenario.py (server log: $work/server.log)"
  fi
  # Each scenario's last line says how many checks passed ("N checks passed" / "after N checks passed").
  n=$(grep -Eo '[0-9]+ checks passed' "$work/$scenario.log" | tail -n 1 | awk '{print $1}')
  passed=$((passed + ${n:-0}))
done

echo
if [ "$failed" -ne 0 ]; then
  echo "last lines of $work/server.log:"
  tail -n 20 "$work/server.log" | sed 's/^/  | /'
fi
echo "python clients: $(($(date +%s) - started)) s"
echo "python-clients: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
