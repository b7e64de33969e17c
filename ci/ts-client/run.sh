#!/usr/bin/env bash
# CI: a TypeScript client generated from `functionary openapi` type-checks (tsc --strict) and
# works against a real server.
#
#   ci/ts-client/run.sh            (from anywhere; needs node >= 18 with npm, and cargo)
#
# 1. builds target/debug/functionary (skipped when FUNCTIONARY_BIN names a binary),
# 2. installs the exact versions pinned in ci/ts-client/package.json into ci/ts-client/node_modules
#    (no lockfile is written or kept; skipped when node_modules already holds that package.json),
# 3. writes the spec to target/ci-ts/openapi.json and generates ci/ts-client/generated/schema.d.ts,
# 4. type-checks scenario.ts with tsc (strict),
# 5. starts the server on a fresh SQLite database and a free port, and runs scenario.ts with tsx.
# Exits non-zero when any step or check fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

here=ci/ts-client
out=target/ci-ts
db="sqlite://$out/db/functionary.db"
bin_dir="$here/node_modules/.bin"
# A fixed secret, for this throwaway database only.
export FUNCTIONARY_JWT_SECRET="ci-ts-client-secret-0123456789abcdefghij"
export NO_COLOR=1

step() { printf '\n== %s\n' "$*"; }

if [[ -n "${FUNCTIONARY_BIN:-}" ]]; then
  bin="$FUNCTIONARY_BIN"
else
  step "cargo build -p functionary"
  cargo build -q -p functionary
  bin=target/debug/functionary
fi

step "npm install (versions pinned in $here/package.json)"
stamp="$here/node_modules/.ci-installed-package.json"
if [[ -f "$stamp" ]] && cmp -s "$here/package.json" "$stamp" \
  && [[ -x "$bin_dir/tsc" && -x "$bin_dir/tsx" && -x "$bin_dir/openapi-typescript" ]]; then
  echo "node_modules is up to date"
else
  (cd "$here" && npm install --no-audit --no-fund --no-package-lock)
  cp "$here/package.json" "$stamp"
fi

step "generate $here/generated/schema.d.ts"
mkdir -p "$out" "$here/generated"
"$bin" openapi >"$out/openapi.json"
"$bin_dir/openapi-typescript" "$out/openapi.json" -o "$here/generated/schema.d.ts"

step "tsc --noEmit (strict)"
"$bin_dir/tsc" -p "$here/tsconfig.json" --noEmit
echo "scenario.ts type-checks"

step "start the server"
rm -rf "$out/db"
mkdir -p "$out/db"
log="$out/server.log"
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

url=""
for attempt in 1 2 3; do
  port=$(free_port)
  "$bin" serve --database "$db" --listen "127.0.0.1:$port" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi # exited, e.g. the port was taken meanwhile
    if node -e 'fetch(process.argv[1]).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))' \
      "http://127.0.0.1:$port/healthz" 2>/dev/null; then
      url="http://127.0.0.1:$port"
      break
    fi
    sleep 0.1
  done
  [[ -n "$url" ]] && break
  echo "server did not come up on port $port (attempt $attempt):" >&2
  cat "$log" >&2
  cleanup
  pid=""
done
if [[ -z "$url" ]]; then
  echo "typescript client: FAILED, the server did not start" >&2
  exit 1
fi
echo "server at $url (log: $log)"

step "scenario.ts"
admin_token=$("$bin" token admin --database "$db")
FUNCTIONARY_URL="$url" FUNCTIONARY_ADMIN_TOKEN="$admin_token" \
  "$bin_dir/tsx" --tsconfig "$here/tsconfig.json" "$here/scenario.ts" || {
    status=$?
    echo "--- server log ($log), last 40 lines:" >&2
    tail -n 40 "$log" >&2
    exit "$status"
  }
