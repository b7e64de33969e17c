#!/usr/bin/env bash
# CI: progenitor (the Rust OpenAPI client generator) accepts `functionary openapi` and the
# client it generates compiles.
#
#   ci/progenitor/run.sh            (from anywhere; needs cargo)
#
# Builds target/debug/functionary (skipped when FUNCTIONARY_BIN names a binary), writes the spec
# to target/ci-progenitor/openapi.json, and builds the standalone crate in ci/progenitor (its build.rs
# runs progenitor's Generator on that file) with CARGO_TARGET_DIR=target/ci-progenitor.
# Exits non-zero, with the generator's error, when progenitor rejects the spec.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

here=ci/progenitor
# only for the check crate: the server binary stays in the main workspace's target/
target_dir="$PWD/target/ci-progenitor"

if [[ -n "${FUNCTIONARY_BIN:-}" ]]; then
  bin="$FUNCTIONARY_BIN"
else
  echo "== cargo build -p functionary"
  cargo build -q -p functionary
  bin=target/debug/functionary
fi

spec="$target_dir/openapi.json"
echo "== write the spec to $spec"
mkdir -p "$target_dir"
"$bin" openapi >"$spec.new"
# keep the file's mtime when nothing changed, so cargo does not rerun the generator
if cmp -s "$spec.new" "$spec"; then
  rm "$spec.new"
else
  mv "$spec.new" "$spec"
fi
progenitor=$(sed -n 's/^progenitor = { version = "=\([^"]*\)".*/\1/p' "$here/Cargo.toml")
echo "spec: OpenAPI $(sed -n 's/.*"openapi": *"\([^"]*\)".*/\1/p' "$spec" | head -n1); progenitor $progenitor"

echo "== cargo build (generate the client with progenitor, compile it)"
log="$target_dir/build.log"
if CARGO_TARGET_DIR="$target_dir" FUNCTIONARY_OPENAPI="$spec" \
  cargo build --manifest-path "$here/Cargo.toml" --color never 2>&1 | tee "$log"; then
  out=$(ls -td "$target_dir"/debug/build/functionary-progenitor-check-*/out 2>/dev/null | head -n1 || true)
  for style in positional builder; do
    lines=$(wc -l <"$out/$style.rs" 2>/dev/null || echo "?")
    echo "generated $style client: $lines lines ($out/$style.rs)"
  done
  echo "progenitor $progenitor: accepted the spec with default settings; the generated clients compile"
else
  echo >&2
  if grep -q "progenitor rejected the spec" "$log"; then
    echo "progenitor $progenitor: REJECTED the spec:" >&2
    sed -n "/progenitor rejected the spec/,\$p" "$log" >&2
  else
    echo "progenitor $progenitor: the generated client does not compile (see $log)" >&2
  fi
  exit 1
fi
