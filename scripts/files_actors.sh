#!/usr/bin/env bash
# Who made each file change, during a fork storm that reuses pids (issue 27): `watch --files W`
# while ../shared/storm runs 50 000 vfork+execs from 8 workers, and 200 `touch`es 20 ms apart,
# each run by a shell that prints its pid first. Every file line is checked against the touch
# exec line of that pid: right (the same id), another process, or null. Needs root, python3,
# and the storm tools built (see ../shared/storm/README.md):
#
#   STORM=/tmp/stormb bash scripts/files_actors.sh
#
# With pid_max at 32 768 a 50 000-process storm wraps, so pids are reused during the run.
set -euo pipefail
cd "$(dirname "$0")/.."
STORM=${STORM:-/tmp/stormb}
out=$(mktemp -d)
W=$out/w
mkdir -p "$W"
deno run -A main.ts watch --files "$W" --stats 1 >"$out/lines.json" 2>"$out/err" &
pp=$!
until grep -q listening "$out/err" 2>/dev/null; do sleep 0.05; done
"$STORM/stormgen" -n 50000 -j 8 -m vfork -e "$STORM/zzstorm_true" -p "$out/pids" >/dev/null &
sp=$!
sleep 1
for i in $(seq 200); do
  sh -c 'echo $$; exec touch "$0/f$1"' "$W" "$i"
  sleep 0.02
done >"$out/touch_pids"
wait $sp
sleep 2
kill -INT $pp
wait $pp || true
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
pids = [int(x) for x in open(f"{out}/touch_pids").read().split()]
recs = [json.loads(l) for l in open(f"{out}/lines.json")]
touch_ids = {}
for r in recs:
    if r.get("event") == "exec" and (r.get("exe") or "").endswith("/touch"):
        touch_ids.setdefault(r["pid"], set()).add(r.get("id"))
right = other = null = missing = 0
for i, pid in enumerate(pids, 1):
    lines = [r for r in recs if r.get("event") == "file" and r.get("action") == "create"
             and r.get("path") == f"{out}/w/f{i}"]
    if not lines:
        missing += 1
    elif lines[0].get("id") is None:
        null += 1
    elif lines[0]["id"] in touch_ids.get(pid, ()):
        right += 1
    else:
        other += 1
        print("OTHER", pid, json.dumps(lines[0])[:400], touch_ids.get(pid))
lost = sum(1 for r in recs if r.get("event") == "lost")
print(f"right {right}, another process {other}, null {null}, missing {missing}; lost lines {lost}")
PY
[ -n "${KEEP:-}" ] && echo "kept $out" || rm -rf "$out"
