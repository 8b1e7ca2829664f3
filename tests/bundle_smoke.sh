#!/usr/bin/env bash
# Smoke test of the shipped single file (dist/proctree.js, from `deno task bundle`): every
# command runs through it as it does from the source. Needs root for watch and run.
set -euo pipefail
cd "$(dirname "$0")/.."
deno_bin=${DENO_BIN:-$(command -v deno || ls "$HOME"/.npm/_npx/*/node_modules/deno/deno 2>/dev/null | head -n 1)}
export PATH="$(dirname "$deno_bin"):$PATH"
bin=dist/proctree.js
fail() { echo "bundle smoke: $*" >&2; exit 1; }

[ -x "$bin" ] || fail "$bin missing or not executable"
"$bin" --version | grep -q '^proctree ' || fail "--version"
"$bin" chain $$ | grep -q "^$$|" || fail "chain"
"$bin" tree | grep -q "($$)" || fail "tree"

out=$(mktemp)
"$bin" watch -q --events exec > "$out" &
watcher=$!
sleep 2
sh -c 'sleep 0.2; true'
sleep 0.5
kill -TERM "$watcher"
wait "$watcher" || fail "watch exit status"
grep -q '"argv":\["sleep","0.2"\]' "$out" || fail "watch saw no exec of sleep"

set +e
"$bin" run -q --no-tree -- sh -c 'exit 5'
status=$?
set -e
[ "$status" -eq 5 ] || fail "run exit status $status"
rm -f "$out"
echo "bundle smoke: ok"
