#!/usr/bin/env bash
# docker_sandbox.sh ROOT TAG: the real dockerd with dockernetd as its network and IPAM plugin,
# run as PID 1 of fresh pid, network and mount namespaces (integration/test_docker.py starts
# it under unshare). It prints what it sees as "NAME: value" lines for the test to check;
# everything it makes dies with its namespaces, but the cgroup /TAG that dockerd creates on
# the host's hierarchies, which the test removes.
set -euo pipefail
root=$1 tag=$2
source "$root/integration/sandbox.sh"
mkdir -p /run/docker/plugins
private_dirs /etc/docker /var/lib/docker
py() { "$root/.venv/bin/python" "$@"; }
# what is left of dockernetd's doing in the kernel: interfaces and rules
kernel_state() {
  ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort | tr '\n' ' '
  iptables-legacy-save | grep -v '^#' | sed 's/\[[0-9:]*\]//'
  ip6tables-legacy-save | grep -v '^#' | sed 's/\[[0-9:]*\]//'
}
start_daemon --docker-plugin
echo "PLUGIN SOCKET: $(stat -c '%a %U' /run/docker/plugins/dockernetd.sock)"

echo '{}' > "$work/daemon.json"
docker() { command docker -H "unix://$work/docker.sock" "$@"; }
start_dockerd() {
  dockerd --config-file "$work/daemon.json" --data-root "$work/docker" --exec-root "$work/exec" \
    --pidfile "$work/docker.pid" -H "unix://$work/docker.sock" --storage-driver vfs \
    --cgroup-parent "/$tag" --bridge none >> "$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 200); do
    [ "$(py -c 'import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
print(s.recv(4096).decode().rsplit("\n",1)[-1])' "$work/docker.sock" 2>/dev/null)" = OK ] && break
    sleep 0.1
  done
}
start_dockerd

wire_outside
make_rootfs "hello from docker"  # an image without a registry: busybox
tar -C "$rootfs" -c . | docker import - bb:latest > /dev/null

before=$(kernel_state)
docker network create -d dockernetd --ipam-driver dockernetd n1 > /dev/null
docker network create -d dockernetd --ipam-driver dockernetd --subnet 10.77.0.0/24 n2 > /dev/null
echo "NETWORKS: $(ctl --json network ls | compact)"
docker run -d --name web --network n1 -p 8080:80 bb:latest httpd -f -p 80 -h /www > /dev/null
echo "ENDPOINTS: $(ctl --json list | compact)"
echo "IN CONTAINER: $(docker exec web ip -o -4 addr show eth0 | awk '{print $4}') $(docker exec web ip route | grep default | awk '{print $3}')"
echo "DOCKER SEES: $(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}/{{.IPPrefixLen}} {{.Gateway}} {{.MacAddress}}{{end}}' web)"
for _ in $(seq 50); do fetch out http://192.0.2.1:8080/ >/dev/null 2>&1 && break; sleep 0.1; done
echo "OUTSIDE: $(fetch out http://192.0.2.1:8080/ 2>&1)"
echo "LOCAL: $(get http://127.0.0.1:8080/ 2>&1 || true)"
docker network connect n2 web
echo "CONNECTED: $(docker exec web ip -o -4 addr show | awk '{print $2, $4}' | grep -v '^lo' | tr '\n' ' ')"
kill -9 "$daemon"; wait "$daemon" 2>/dev/null || true  # a crash while the container runs
echo "WHILE DOWN: $(fetch out http://192.0.2.1:8080/ 2>&1)"
start_daemon --docker-plugin
echo "RESTARTED: $(ctl --json list | compact)"
docker network disconnect n2 web
echo "DISCONNECTED: $(ctl --json list | compact)"
kill "$dockerd_pid"; wait "$dockerd_pid" 2>/dev/null || true  # dockerd stops web
start_dockerd
echo "DOCKERD RESTARTED: $(docker network ls --filter driver=dockernetd --format '{{.Name}}' | sort | tr '\n' ' ')"
docker start web > /dev/null
for _ in $(seq 50); do fetch out http://192.0.2.1:8080/ >/dev/null 2>&1 && break; sleep 0.1; done
echo "AGAIN: $(fetch out http://192.0.2.1:8080/ 2>&1)"
# a dual-stack network: both pools from dockernetd's IPAM, IPv6 published with DNAT
ip addr add 2001:db8:a::1/64 dev up0 nodad; ip -n out addr add 2001:db8:a::2/64 dev eth0 nodad
docker network create -d dockernetd --ipam-driver dockernetd --ipv6 n6 > /dev/null
docker run -d --name web6 --network n6 -p 8086:80 bb:latest httpd -f -p 80 -h /www > /dev/null
echo "DUAL STACK: $(ctl --json network ls | compact)"
echo "DUAL STACK IN CONTAINER: $(docker exec web6 ip -o -6 addr show eth0 scope global | awk '{print $4}') $(docker exec web6 ip -6 route | grep default | awk '{print $3}')"
echo "DUAL STACK DOCKER SEES: $(docker inspect -f '{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}/{{.GlobalIPv6PrefixLen}} {{.IPv6Gateway}}{{end}}' web6)"
for _ in $(seq 50); do fetch out 'http://[2001:db8:a::1]:8086/' >/dev/null 2>&1 && break; sleep 0.1; done
echo "OUTSIDE OVER IPV6: $(fetch out 'http://[2001:db8:a::1]:8086/' 2>&1)"
docker rm -f web6 > /dev/null
docker network rm n6 > /dev/null
ip addr del 2001:db8:a::1/64 dev up0
docker rm -f web > /dev/null
docker network rm n1 n2 > /dev/null
echo "AFTER RM: $(ctl --json list | compact) $(ctl --json network ls | compact)"
after=$(kernel_state)
echo "KERNEL AS BEFORE: $([ "$before" = "$after" ] && echo yes || diff <(echo "$before") <(echo "$after") | tr '\n' ' ')"
kill "$dockerd_pid"; wait "$dockerd_pid" 2>/dev/null || true
