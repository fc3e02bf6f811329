#!/usr/bin/env bash
# render.sh PREFIX OUTDIR: the units for a checkout at PREFIX (its .venv), written to OUTDIR.
set -euo pipefail
prefix=$(cd "$1" && pwd)
out=$2
here=$(dirname "$0")
python="$prefix/.venv/bin/python"
[ -x "$python" ] || { echo "render.sh: no $python (run make install)" >&2; exit 1; }
libdir=$("$python" -c 'from dockernetd.kernel.firewall import xtables_libdir; print(xtables_libdir() or "")')
[ -n "$libdir" ] || { echo "render.sh: xtables extensions not found (apt-get install iptables)" >&2; exit 1; }
# ProtectHome=yes would hide a checkout under /root or /home from the service, and
# PrivateTmp=yes one under /tmp: then they are relaxed as little as the checkout needs
case "$prefix/" in /root/*|/home/*|/run/user/*) protect_home=read-only;; *) protect_home=yes;; esac
case "$prefix/" in /tmp/*|/var/tmp/*) private_tmp=no;; *) private_tmp=yes;; esac
mkdir -p "$out"
sed -e "s#@PREFIX@#$prefix#g" -e "s#@PYTHON@#$python#g" -e "s#@XTABLES_LIBDIR@#$libdir#g" \
    -e "s#@PROTECT_HOME@#$protect_home#g" -e "s#@PRIVATE_TMP@#$private_tmp#g" \
    "$here/dockernetd.service.in" > "$out/dockernetd.service"
cp "$here/dockernetd.socket" "$out/dockernetd.socket"
