#!/usr/bin/env bash
# Installs proctree on this host: the compiled binary (dist/proctree, from
# `deno task compile`) or, failing that, the bundle (dist/proctree.js, from
# `deno task bundle`) with the deno that runs it; optionally the systemd unit.
#
#   scripts/install.sh [--prefix /usr/local] [--systemd] [--enable]
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=/usr/local
systemd=0
enable=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --systemd) systemd=1; shift ;;
    --enable) systemd=1; enable=1; shift ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

# Everything is checked before anything is written under $prefix.
if [ ! -x dist/proctree ] && [ ! -f dist/proctree.js ]; then
  echo "install.sh: nothing built yet: run npx -y deno@2.9.6 task install (it bundles first)" >&2
  exit 1
fi
if [ ! -x dist/proctree ]; then
  deno_bin=${DENO:-$(command -v deno || ls "$HOME"/.npm/_npx/*/node_modules/deno/deno 2>/dev/null | head -n 1 || true)}
  [ -x "$deno_bin" ] || { echo "install.sh: no deno to run the bundle: run npx -y deno@2.9.6 task install, or set DENO=/path/to/deno" >&2; exit 1; }
fi

install -d "$prefix/bin"
if [ -x dist/proctree ]; then
  install -m 0755 dist/proctree "$prefix/bin/proctree"
else
  install -d "$prefix/lib/proctree"
  install -m 0755 "$deno_bin" "$prefix/lib/proctree/deno"
  install -m 0644 dist/proctree.js "$prefix/lib/proctree/proctree.js"
  cat > "$prefix/bin/proctree" <<WRAP
#!/bin/sh
exec "$prefix/lib/proctree/deno" run --quiet --no-prompt --v8-flags=--max-semi-space-size=8 --allow-ffi --allow-read --allow-run --allow-write "$prefix/lib/proctree/proctree.js" "\$@"
WRAP
  chmod 0755 "$prefix/bin/proctree"
fi
echo "installed $("$prefix/bin/proctree" --version) as $prefix/bin/proctree"

if [ "$systemd" = 1 ]; then
  sed "s#/usr/local/bin/proctree#$prefix/bin/proctree#" scripts/proctree.service > /etc/systemd/system/proctree.service
  echo "installed /etc/systemd/system/proctree.service"
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    if [ "$enable" = 1 ]; then
      systemctl enable --now proctree.service && echo "enabled and started proctree.service"
    fi
  elif [ "$enable" = 1 ]; then
    echo "install.sh: --enable did nothing: systemd is not running here (no /run/systemd/system)" >&2
  fi
fi
