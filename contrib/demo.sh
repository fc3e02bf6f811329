#!/usr/bin/env bash
# make demo: what dockernetd is for, in a minute. Throwaway namespaces play the host (it runs
# the daemon, with --icc=false), two containers (web, db) and a machine outside (on the host's
# uplink). A port is published and fetched over HTTP from outside (DNAT: web sees the real
# client address) and from the host's 127.0.0.1 (the proxy); a link lets db reach exactly one
# port of web; a network of its own (red) is isolated from the first; then list, verify,
# release. Everything made here is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make demo needs root (it creates network namespaces)"; exit 1; }

tag="dnd-demo-$$"
host="$tag-host"; web="$tag-web"; db="$tag-db"; red="$tag-red"; outside="$tag-out"
work=$(mktemp -d)
sock="$work/dockernetd.sock"
py=.venv/bin/python
pids=()
ctl() { .venv/bin/dockernetctl --socket "$sock" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '  $ %s\n' "$*"; "$@" 2>&1 | sed 's/^/    /'; }

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  for ns in "$outside" "$red" "$db" "$web" "$host"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# An HTTP server that says who it is and who asked (the address it sees the client at).
SERVER='
import http.server, sys
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from {sys.argv[2]}:{sys.argv[1]}, you are {self.client_address[0]}\n".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Hello).serve_forever()
'
# GET a URL from a namespace: the body, or why not (after 2 s).
fetch() {  # NS URL
  printf '  %-8s GET %-28s -> ' "${1#"$tag"-}" "$2"
  ip netns exec "$1" $py -c '
import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode().strip())
except Exception as exc:
    print("no answer (%s)" % getattr(exc, "reason", exc))' "$2"
}

step "namespaces: host (runs dockernetd), web, db and red (containers), outside (another machine)"
for ns in "$host" "$web" "$db" "$red" "$outside"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$host" link add uplink type veth peer name eth0 netns "$outside"
ip -n "$host" addr add 192.0.2.1/24 dev uplink; ip -n "$host" link set uplink up
ip -n "$outside" addr add 192.0.2.2/24 dev eth0; ip -n "$outside" link set eth0 up
echo "  outside 192.0.2.2 <-> 192.0.2.1 host (no route from outside to the containers)"
echo "nameserver 192.0.2.53" > "$work/resolv.conf"

step "dockernetd --icc=false starts in the host: init_networkdriver makes the bridge and rules"
ip netns exec "$host" .venv/bin/dockernetd --icc=false --socket "$sock" --state-dir "$work" \
  --resolv-conf "$work/resolv.conf" --metrics-addr 127.0.0.1:9323 --log-level warning &
pids+=($!)
for _ in $(seq 100); do ctl status >/dev/null 2>&1 && break; sleep 0.1; done
show ip -n "$host" -br addr show docker0
show ip netns exec "$host" iptables-legacy -t nat -S POSTROUTING

attach() {  # NS ID [NETWORK]: allocate_interface, then what a runtime does with its answer
  local ns=$1 id=$2 network=${3:-bridge} json ip prefix gw mac mtu bridge
  json=$(ctl --json allocate-interface "$id" --network "$network")
  read -r ip prefix gw mac mtu bridge < <($py -c 'import json,sys; d=json.load(sys.stdin); print(d["ip"], d["prefix_len"], d["gateway"], d["mac_address"], d["mtu"], d["bridge"])' <<<"$json")
  ip -n "$host" link add "veth-$id" type veth peer name eth0 netns "$ns"
  ip -n "$host" link set "veth-$id" master "$bridge" up
  ip -n "$ns" link set eth0 address "$mac" mtu "$mtu" up
  ip -n "$ns" addr add "$ip/$prefix" dev eth0
  ip -n "$ns" route add default via "$gw"
  printf '  %-4s %s/%s via %s, mac %s, veth-%s in %s\n' "$id" "$ip" "$prefix" "$gw" "$mac" "$id" "$bridge"
  eval "${id}_ip=$ip"
}
step "allocate-interface web, db: addresses from the bridge, wired with veth pairs"
attach "$web" web
attach "$db" db
for port in 80 81; do ip netns exec "$web" $py -c "$SERVER" "$port" web & pids+=($!); done
for _ in $(seq 50); do ip netns exec "$web" $py -c 'import socket; socket.create_connection(("127.0.0.1", 81), 1)' 2>/dev/null && break; sleep 0.1; done

step "allocate-port web 80 --host-port 8080: a DNAT rule and the in-process proxy"
show ctl allocate-port web 80 --host-port 8080
fetch "$outside" "http://192.0.2.1:8080/"
fetch "$host" "http://127.0.0.1:8080/"
echo "  (outside: DNAT, web sees the real client; 127.0.0.1: the proxy, web sees the gateway)"

step "--icc=false: db cannot reach web; a link opens exactly web's port 80 to db"
fetch "$db" "http://$web_ip:80/"
show ctl link add "$db_ip" "$web_ip" 80/tcp   # parent db may reach child web:80
fetch "$db" "http://$web_ip:80/"
fetch "$db" "http://$web_ip:81/"

step "network create red: a bridge and subnet of its own, isolated from docker0's"
show ctl network create red
attach "$red" red red
fetch "$red" "http://$web_ip:80/"
show ctl network ls

step "dockernetctl list, verify; a few metrics (--metrics-addr)"
show ctl list
show ctl verify
ip netns exec "$host" $py -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:9323/metrics").read().decode())' \
  | grep -E '^dockernetd_(rpc_requests_total\{method="allocate|port_mappings|links|addresses_in_use|proxy_connections_total\{proto="tcp)' | sed 's/^/    /'

step "release-interface web, db: addresses, ports, proxy and rules go back"
show ctl link remove "$db_ip" "$web_ip" 80/tcp
show ctl release-interface web
show ctl release-interface db
show ctl release-interface red
show ctl network rm red
show ip netns exec "$host" iptables-legacy -t nat -S DOCKER
fetch "$outside" "http://192.0.2.1:8080/"

step "done: the daemon stops and every namespace made here is deleted"
