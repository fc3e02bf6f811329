#!/usr/bin/env bash
# podman_sandbox.sh ROOT TAG: the real podman with dockernetd as its CNI plugin, run as PID 1
# of fresh pid, network and mount namespaces (integration/test_podman.py starts it under
# unshare). It prints what it sees as "NAME: value" lines for the test to check; everything it
# makes dies with its namespaces, but the cgroup /TAG that podman creates on the host's
# hierarchies, which the test removes.
set -euo pipefail
root=$1 tag=$2
source "$root/integration/sandbox.sh"
private_dirs /etc/containers /var/lib/containers /var/lib/cni /etc/cni/net.d
endpoints() { ctl --json list | compact; }
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

wire_outside
make_rootfs "hello from podman"  # podman runs it with --rootfs, no image

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
