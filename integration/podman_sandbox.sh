#!/usr/bin/env bash
# podman_sandbox.sh ROOT TAG: the real podman with dockernetd as its CNI plugin, run as PID 1
# of fresh pid, network and mount namespaces (integration/test_podman.py starts it under
# unshare). It prints what it sees as "NAME: value" lines for the test to check; everything it
# makes dies with its namespaces, but the cgroup /TAG that podman creates on the host's
# hierarchies, which the test removes.
set -euo pipefail
root=$1 tag=$2
mount -t tmpfs tmpfs /run
mkdir -p /run/netns /run/dnd
ip link set lo up
if ip link show eth0 >/dev/null 2>&1; then echo "not isolated: eth0 is here" >&2; exit 1; fi
for dir in /etc/containers /var/lib/containers /var/lib/cni /etc/cni/net.d; do
  mkdir -p "$dir"; mount -t tmpfs tmpfs "$dir"
done
work=/run/dnd
ctl() { "$root/.venv/bin/dockernetctl" --socket "$work/d.sock" "$@"; }
endpoints() { ctl --json list | "$root/.venv/bin/python" -c 'import json, sys; print(json.dumps(json.load(sys.stdin)))'; }
get() { "$root/.venv/bin/python" -c '
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip())' "$1"; }
fetch() { ip netns exec "$1" bash -c "$(declare -f get); root=$root; get $2"; }

# dockernetd in this namespace, and the plugin where podman looks for it
echo "nameserver 192.0.2.53" > "$work/resolv.conf"
start_daemon() {
  "$root/.venv/bin/dockernetd" --socket "$work/d.sock" --state-dir "$work/state" \
    --resolv-conf "$work/resolv.conf" >> "$work/daemon.log" 2>&1 &
  daemon=$!
  for _ in $(seq 100); do ctl status >/dev/null 2>&1 && break; sleep 0.1; done
}
start_daemon
ctl network create red --subnet 10.88.5.0/24 > /dev/null
bash "$root/contrib/cni/render.sh" "$root" "$work/cni"
cat > /etc/containers/containers.conf <<CONF
[network]
network_backend = "cni"
cni_plugin_dirs = ["$work/cni"]
network_config_dir = "/etc/cni/net.d"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
CONF
echo '{"default":[{"type":"insecureAcceptAnything"}]}' > /etc/containers/policy.json
cat > /etc/cni/net.d/red.conflist <<CONF
{"cniVersion": "1.0.0", "name": "red", "plugins": [{"type": "dockernetd", "network": "red",
  "socket": "$work/d.sock", "capabilities": {"portMappings": true}}]}
CONF

# another machine on the host's uplink
ip netns add out
ip link add up0 type veth peer name eth0 netns out
ip addr add 192.0.2.1/24 dev up0; ip link set up0 up
ip -n out addr add 192.0.2.2/24 dev eth0; ip -n out link set eth0 up; ip -n out link set lo up

# a busybox root filesystem: podman runs it with --rootfs, no image
rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/www" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/etc"
cp /usr/bin/busybox "$rootfs/bin/busybox"
for tool in sh httpd sleep; do ln -s busybox "$rootfs/bin/$tool"; done
echo "hello from podman" > "$rootfs/www/index.html"

podman() { command podman --root "$work/storage" --runroot /run/containers/storage \
  --storage-driver vfs "$@"; }
echo "NETWORKS: $(podman network ls --format '{{.Name}}/{{.Driver}}' | tr '\n' ' ')"
podman run -d --name web --cgroup-parent "/$tag" --network red -p 8080:80 --rootfs "$rootfs" \
  /bin/httpd -f -p 80 -h /www > /dev/null
echo "ENDPOINTS: $(endpoints)"
echo "HOLDER: $(ss -Hltnp 'sport = :8080' | grep -o 'users:(("[a-z-]*' | cut -d'"' -f2 | sort -u | tr '\n' ' ')"
for _ in $(seq 50); do fetch out http://192.0.2.1:8080/ >/dev/null 2>&1 && break; sleep 0.1; done
echo "OUTSIDE: $(fetch out http://192.0.2.1:8080/ 2>&1)"
echo "LOCAL: $(get http://127.0.0.1:8080/ 2>&1 || true)"
kill -9 "$daemon"; wait "$daemon" 2>/dev/null || true  # a crash while the container runs
echo "WHILE DOWN: $(fetch out http://192.0.2.1:8080/ 2>&1)"
start_daemon
echo "RESTARTED: $(endpoints)"
podman rm -f -t 0 web > /dev/null
echo "AFTER RM: $(endpoints)"
echo "RULES LEFT: $(iptables-legacy-save | grep -c -e 8080 -e 10.88.5.2 || true)"
