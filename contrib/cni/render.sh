#!/usr/bin/env bash
# render.sh PREFIX OUTDIR: the CNI plugin for a checkout at PREFIX, as OUTDIR/dockernetd.
# A launcher that starts the venv's interpreter with -IS (-I -S: one shebang argument) (no site, no environment): the
# plugin needs only the standard library and the checkout, and a runtime execs it for every
# container, so its start-up is part of every container start (about half of the console
# script's). Link or copy it into the runtime's CNI bin dir (e.g. /usr/lib/cni/dockernetd).
set -euo pipefail
prefix=$(cd "$1" && pwd)
out=$2
python="$prefix/.venv/bin/python"
[ -x "$python" ] || { echo "render.sh: no $python (run make install)" >&2; exit 1; }
mkdir -p "$out"
cat > "$out/dockernetd" <<LAUNCHER
#!$python -IS
import sys
sys.path.insert(0, "$prefix")
from dockernetd.cni import main
main()
LAUNCHER
chmod 0755 "$out/dockernetd"
