#!/usr/bin/env bash
# render.sh PREFIX OUTDIR: the units for a checkout at PREFIX (its .venv), written to OUTDIR.
set -euo pipefail
prefix=$(cd "$1" && pwd)
out=$2
here=$(dirname "$0")
python="$prefix/.venv/bin/python"
[ -x "$python" ] || { echo "render.sh: no $python (run make install)" >&2; exit 1; }
"$python" -c 'from dockernetd.kernel.firewall import library_hints; assert "XTABLES_LIBDIR" in library_hints()' 2>/dev/null ||
  { echo "render.sh: xtables extensions not found (apt-get install iptables)" >&2; exit 1; }

mkdir -p "$out"
sed -e "s#@PREFIX@#$prefix#g" -e "s#@PYTHON@#$python#g" \
    "$here/dockernetd.service.in" > "$out/dockernetd.service"
cp "$here/dockernetd.socket" "$out/dockernetd.socket"
