# sandbox.sh: what podman_sandbox.sh and docker_sandbox.sh share, sourced with $root set (the
# checkout). It makes /run and the runtime's directories private, and defines the helpers.
mount -t tmpfs tmpfs /run
mkdir -p /run/netns /run/dnd
ip link set lo up
if ip link show eth0 >/dev/null 2>&1; then echo "not isolated: eth0 is here" >&2; exit 1; fi
work=/run/dnd
echo "nameserver 192.0.2.53" > "$work/resolv.conf"

private_dirs() { for dir in "$@"; do mkdir -p "$dir"; mount -t tmpfs tmpfs "$dir"; done; }
ctl() { "$root/.venv/bin/dockernetctl" --socket "$work/d.sock" "$@"; }
compact() { "$root/.venv/bin/python" -c 'import json, sys; print(json.dumps(json.load(sys.stdin)))'; }
get() { "$root/.venv/bin/python" -c '
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip())' "$1"; }
fetch() { ip netns exec "$1" bash -c "$(declare -f get); root=$root; get $2"; }

# dockernetd in this namespace (extra flags as arguments); $daemon is its PID
start_daemon() {
  "$root/.venv/bin/dockernetd" --socket "$work/d.sock" --state-dir "$work/state" \
    --resolv-conf "$work/resolv.conf" "$@" >> "$work/daemon.log" 2>&1 &
  daemon=$!
  for _ in $(seq 100); do ctl status >/dev/null 2>&1 && break; sleep 0.1; done
}

# another machine, "out", on the host's uplink: the host is 192.0.2.1, it is 192.0.2.2
wire_outside() {
  ip netns add out
  ip link add up0 type veth peer name eth0 netns out
  ip addr add 192.0.2.1/24 dev up0; ip link set up0 up
  ip -n out addr add 192.0.2.2/24 dev eth0; ip -n out link set eth0 up; ip -n out link set lo up
}

# a busybox root filesystem at $work/rootfs serving "$1" at /www/index.html
make_rootfs() {
  rootfs=$work/rootfs
  mkdir -p "$rootfs/bin" "$rootfs/www" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/etc"
  cp /usr/bin/busybox "$rootfs/bin/busybox"
  for tool in sh httpd sleep ip; do ln -s busybox "$rootfs/bin/$tool"; done
  echo "$1" > "$rootfs/www/index.html"
}
