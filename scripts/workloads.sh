#!/bin/sh
# The ordinary workloads that exec facts are checked on (BENCHMARKS.md, "Exec facts from BPF"):
# bursts of short-lived processes, the kind a storm pace must not cost their argv.
#
#   python3 scripts/argv_check.py -- sh scripts/workloads.sh shell|configure|make|pip|apt
#
# shell, configure, make and pip need nothing from the network; apt reinstalls one small
# package from the configured Debian mirror (root).
set -eu

work=$(mktemp -d /tmp/proctree-workload.XXXXXX)
trap 'rm -rf "$work"' EXIT

case "${1:-}" in
shell)
  # 1 600 × a shell and a pipe: 3 200 execs of processes that live a millisecond.
  for _ in $(seq 1600); do sh -c 'echo x | tr x y' >/dev/null; done
  ;;
configure)
  # What a configure script does between compiles: 400 rounds of sed, grep and expr.
  for i in $(seq 400); do
    echo "HAVE_$i" | sed 's/HAVE_/#define HAVE_/' >/dev/null
    echo "checking for item $i" | grep -q item
    expr "$i" + 1 >/dev/null || true
  done
  ;;
make)
  # 40 C files built two at a time: make, gcc, cc1, as, and the link.
  for i in $(seq 40); do printf 'int f%s(int x) { return x * %s; }\n' "$i" "$i" >"$work/f$i.c"; done
  printf 'int main(void) { return 0; }\n' >"$work/main.c"
  printf 'SRC := $(wildcard *.c)\nprog: $(SRC:.c=.o)\n\t$(CC) -o $@ $^\n%%.o: %%.c\n\t$(CC) -O1 -c -o $@ $<\n' \
    >"$work/Makefile"
  make -s -j2 -C "$work"
  ;;
pip)
  # A venv and a pip install of a wheel made here (no index, no network).
  python3 - "$work" <<'EOF'
import base64, hashlib, sys, zipfile
work = sys.argv[1]
files = {
    "proctree_probe/__init__.py": b"VALUE = 1\n",
    "proctree_probe-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: proctree-probe\nVersion: 1.0\n",
    "proctree_probe-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: proctree\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
def digest(data):
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
record = "".join(f"{name},sha256={digest(data)},{len(data)}\n" for name, data in files.items())
record += "proctree_probe-1.0.dist-info/RECORD,,\n"
with zipfile.ZipFile(f"{work}/proctree_probe-1.0-py3-none-any.whl", "w") as z:
    for name, data in files.items():
        z.writestr(name, data)
    z.writestr("proctree_probe-1.0.dist-info/RECORD", record)
EOF
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install -q --no-index "$work/proctree_probe-1.0-py3-none-any.whl"
  "$work/venv/bin/python" -c 'import proctree_probe'
  ;;
apt)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall fontconfig-config >/dev/null
  ;;
*)
  echo "usage: workloads.sh shell|configure|make|pip|apt" >&2
  exit 2
  ;;
esac
