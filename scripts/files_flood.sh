#!/usr/bin/env bash
# Kernel memory held by the file-change queue while proctree cannot read it (issue 27): with
# `watch --files W` stopped (SIGSTOP), N creates and unlinks on W's filesystem outside W, and
# SUnreclaim before and after. Needs root and python3:
#
#   bash scripts/files_flood.sh [N]      (default 600 000)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-600000}
base=$(mktemp -d)
mkdir -p "$base/w" "$base/flood"
deno run -A main.ts watch --files "$base/w" --events exec >"$base/lines.json" 2>"$base/err" &
pp=$!
until grep -q listening "$base/err" 2>/dev/null; do sleep 0.05; done
grep -o "queue [0-9]* events" "$base/err" || echo "queue: the kernel's default"
kill -STOP $pp
before=$(awk '/SUnreclaim/{print $2}' /proc/meminfo)
python3 -c "
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    p = f'{d}/f{i}'
    open(p, 'w').close(); os.unlink(p)
" "$base/flood" "$n"
after=$(awk '/SUnreclaim/{print $2}' /proc/meminfo)
kill -CONT $pp
sleep 5
kill -INT $pp
wait $pp || true
echo "$n changes outside PATH while stopped: SUnreclaim +$(((after - before) / 1024)) MB;" \
  "$(grep -c '"files_overflow"' "$base/lines.json" || true) files_overflow line(s)"
rm -rf "$base"
