#!/usr/bin/env bash
# make demo: dockernetd in a throwaway network namespace, two "containers" on its bridge
# pinging each other and the gateway. Everything it makes is removed on exit, even on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make demo needs root (it creates network namespaces)"; exit 1; }

tag="dnd-demo-$$"
host="$tag-host"; c1="$tag-c1"; c2="$tag-c2"
work=$(mktemp -d)
sock="$work/dockernetd.sock"
daemon_pid=""
ctl() { .venv/bin/dockernetctl --socket "$sock" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  for ns in "$c2" "$c1" "$host"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

step "namespaces: $host (runs the daemon), $c1 and $c2 (containers)"
for ns in "$host" "$c1" "$c2"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
echo "nameserver 192.0.2.53" > "$work/resolv.conf"

step "dockernetd starts in $host"
ip netns exec "$host" .venv/bin/dockernetd --socket "$sock" --resolv-conf "$work/resolv.conf" --state-dir "$work" \
  2> >(sed 's/^/  [dockernetd] /' >&2) &
daemon_pid=$!
for _ in $(seq 100); do ctl status >/dev/null 2>&1 && break; sleep 0.1; done
ctl status

attach() {  # what a runtime does with allocate_interface's answer
  local ns=$1 id=$2 veth=$3
  step "dockernetctl allocate-interface $id"
  local json; json=$(ctl --json allocate-interface "$id")
  echo "$json"
  local ip prefix gw mac mtu bridge
  read -r ip prefix gw mac mtu bridge < <(.venv/bin/python -c 'import json,sys; d=json.load(sys.stdin); print(d["ip"], d["prefix_len"], d["gateway"], d["mac_address"], d["mtu"], d["bridge"])' <<<"$json")
  ip -n "$host" link add "$veth" type veth peer name eth0 netns "$ns"
  ip -n "$host" link set "$veth" master "$bridge" up
  ip -n "$ns" link set eth0 address "$mac" mtu "$mtu" up
  ip -n "$ns" addr add "$ip/$prefix" dev eth0
  ip -n "$ns" route add default via "$gw"
  echo "$id: eth0 $ip/$prefix via $gw ($mac), veth $veth in $bridge"
  eval "${id}_ip=$ip"; gateway=$gw
}
attach "$c1" web veth-demo1
attach "$c2" db veth-demo2

step "web -> db, db -> web, web -> gateway"
ip netns exec "$c1" ping -c 2 -W 2 "$db_ip"
ip netns exec "$c2" ping -c 2 -W 2 "$web_ip"
ip netns exec "$c1" ping -c 2 -W 2 "$gateway"

step "dockernetctl list, then release both"
ctl list
ctl release-interface web
ctl release-interface db
ctl list

step "done: everything made here is removed now"
