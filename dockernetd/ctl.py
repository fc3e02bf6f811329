"""``dockernetctl``: the daemon's API from a shell.

Human-readable output by default, ``--json`` for scripts; exit 1 with the
error message when the daemon answers an error, 2 for bad usage, 3 when the
daemon cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from .client import DEFAULT_SOCKET, Client, RpcError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dockernetctl", description="Talk to dockernetd.")
    p.add_argument(
        "--socket",
        default=os.environ.get("DOCKERNETD_SOCKET", DEFAULT_SOCKET),
        help="the daemon's socket (default: $DOCKERNETD_SOCKET or %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print the raw JSON result")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("status", help="bridge, configuration and counts")
    sub.add_parser("list", help="container interfaces and their ports")
    sub.add_parser("cluster", help="the hosts of the cluster, their subnets and lease ages")

    n = sub.add_parser("network", help="networks: create, ls, inspect, rm")
    nsub = n.add_subparsers(dest="network_command", required=True, metavar="SUBCOMMAND")
    nc = nsub.add_parser("create", help="a network with its own bridge and subnet")
    nc.add_argument("name")
    nc.add_argument("--subnet", help="e.g. 172.20.0.0/16 (default: the next free one)")
    nc.add_argument("--gateway", help="the bridge's address (default: the subnet's first)")
    nc.add_argument("--ip-range", dest="ip_range", help="hand out addresses only from here")
    nc.add_argument("--bridge", help="the bridge device (default: br-<12 hex of the id>)")
    nc.add_argument("--internal", action="store_true", help="no route out, no published ports")
    nc.add_argument("--icc", type=_bool, help="containers may talk to each other (default: true)")
    nc.add_argument("--ip-masq", dest="ip_masq", type=_bool, help="masquerade (default: true)")
    nc.add_argument("--mtu", type=int)
    nc.add_argument("--host-binding-ip", dest="host_binding_ip")
    nsub.add_parser("ls", help="every network")
    for name, text in (("inspect", "a network and its endpoints"), ("rm", "remove a network")):
        nsub.add_parser(name, help=text).add_argument("name")

    a = sub.add_parser("allocate-interface", help="an address for a container")
    a.add_argument("id")
    a.add_argument("--ip", help="request this address")
    a.add_argument("--mac", help="request this MAC address")
    a.add_argument("--network", help="on this network (default: bridge)")

    r = sub.add_parser("release-interface", help="free a container's address and ports")
    r.add_argument("id")
    r.add_argument("--network", help="only on this network (default: on all)")

    ap = sub.add_parser("allocate-port", help="publish a container port on the host")
    ap.add_argument("id")
    ap.add_argument("container_port", metavar="CPORT", type=int)
    ap.add_argument("--proto", choices=("tcp", "udp"), default="tcp")
    ap.add_argument("--host-ip")
    ap.add_argument("--host-port", type=int, default=0)
    ap.add_argument("--count", type=int, help="publish CPORT..CPORT+COUNT-1 (allocate_port_range)")
    ap.add_argument("--network", help="through the endpoint on this network")
    ap.add_argument(
        "--no-proxy",
        dest="proxy",
        action="store_false",
        help="publish in the kernel only; the caller holds the host port (as CNI's portmap)",
    )

    lk = sub.add_parser("link", help="allow a parent to reach a child's ports")
    lk.add_argument("action", choices=("add", "remove"))
    lk.add_argument("parent_ip", metavar="PARENT_IP")
    lk.add_argument("child_ip", metavar="CHILD_IP")
    lk.add_argument("ports", metavar="PORT/PROTO", nargs="+")
    lk.add_argument("--ignore-errors", action="store_true")
    lk.add_argument("--network", help="the network of both (default: bridge)")

    v = sub.add_parser("verify", help="compare the recorded state with the kernel")
    v.add_argument("--repair", action="store_true", help="put back what drifted")

    c = sub.add_parser("call", help="call any method with JSON params")
    c.add_argument("method")
    c.add_argument("params", nargs="?", default="{}", metavar="JSON")
    return p


def request_for(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The method and params a parsed command line stands for."""
    command = args.command
    if command == "status":
        return "status", {}
    if command == "list":
        return "list_interfaces", {}
    if command == "cluster":
        return "cluster", {}
    if command == "network":
        return _network_request(args)
    if command == "allocate-interface":
        params = {
            "id": args.id,
            "requested_ip": args.ip,
            "requested_mac": args.mac,
            "network": args.network,
        }
        return "allocate_interface", _given(params)
    if command == "release-interface":
        return "release_interface", _given({"id": args.id, "network": args.network})
    if command == "allocate-port":
        params = {
            "id": args.id,
            "container_port": args.container_port,
            "proto": args.proto,
            "host_port": args.host_port,
        }
        if args.host_ip:
            params["host_ip"] = args.host_ip
        if args.network:
            params["network"] = args.network
        if not args.proxy:
            params["proxy"] = False
        if args.count is not None:
            return "allocate_port_range", {**params, "count": args.count}
        return "allocate_port", params
    if command == "verify":
        return "verify", {"repair": args.repair}
    if command == "link":
        return "link", {
            "action": args.action,
            "parent_ip": args.parent_ip,
            "child_ip": args.child_ip,
            "ports": args.ports,
            "ignore_errors": args.ignore_errors,
            **_given({"network": args.network}),
        }
    params = json.loads(args.params)
    if not isinstance(params, dict):
        raise ValueError("params must be a JSON object")
    return args.method, params


def _network_request(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    command = args.network_command
    if command == "ls":
        return "network_list", {}
    if command == "inspect":
        return "network_inspect", {"name": args.name}
    if command == "rm":
        return "network_delete", {"name": args.name}
    settings = ("subnet", "gateway", "ip_range", "bridge", "icc", "ip_masq", "mtu")
    params = _given({"name": args.name, **{k: getattr(args, k) for k in settings}})
    if args.host_binding_ip:
        params["host_binding_ip"] = args.host_binding_ip
    if args.internal:
        params["internal"] = True
    return "network_create", params


def _host(address: str) -> str:
    """An IPv6 address in brackets, as before a port: ``[::1]:8080``."""
    return f"[{address}]" if ":" in address else address


def _given(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"want true or false, not {text!r}")
    return text == "true"


def render(method: str, result: Any) -> str:
    """A result as a person reads it."""
    if method == "network_list":
        lines = [f"{'NAME':<20} {'BRIDGE':<16} {'SUBNET':<18} {'GATEWAY':<15} ENDPOINTS"]
        for net in result:
            internal = "  (internal)" if net["internal"] else ""
            lines.append(
                f"{net['name']:<20} {net['bridge']:<16} {net['subnet']:<18} "
                f"{net['gateway']:<15} {net['endpoints']}{internal}"
            )
        return "\n".join(lines)
    if method == "network_inspect":
        settings = {k: v for k, v in result.items() if k != "endpoints"}
        return render("", settings) + "\n\n" + render("list_interfaces", result["endpoints"])
    if method == "cluster":
        if not result["enabled"]:
            return "no cluster (the daemon runs without --cluster-store)"
        lines = [f"{'HOST':<16} {'SUBNET':<18} {'LEASE AGE':>10}  ROUTE"]
        for host in result["hosts"]:
            route = "(this host)" if host["self"] else ("yes" if host["routed"] else "no")
            if "route_error" in host:
                route += f": {host['route_error']}"
            lines.append(
                f"{host['advertise']:<16} {host['subnet']:<18} {host['age_s']:>9.0f}s  {route}"
            )
        return "\n".join(lines)
    if method == "list_interfaces":
        if not result:
            return "no interfaces"
        lines = [f"{'ID':<24} {'NETWORK':<16} {'IP':<16} {'MAC':<18} PORTS"]
        for iface in result:
            ports = ", ".join(
                f"{_host(p['host_ip'])}:{p['host_port']}->{p['container_port']}/{p['proto']}"
                for p in iface["ports"]
            )
            lines.append(
                f"{iface['id']:<24} {iface['network']:<16} {iface['ip']:<16} "
                f"{iface['mac_address']:<18} {ports}"
            )
        return "\n".join(lines)
    if isinstance(result, dict):
        width = max((len(k) for k in result), default=0)
        return "\n".join(f"{k:<{width}}  {_plain(v)}" for k, v in result.items())
    return _plain(result)


def _plain(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return "-" if value is None else str(value)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        method, params = request_for(args)
    except ValueError as exc:
        print(f"dockernetctl: bad params: {exc}", file=sys.stderr)
        return 2
    try:
        with Client(args.socket) as client:
            result = client.call(method, **params)
    except RpcError as exc:
        print(f"dockernetctl: error {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"dockernetctl: cannot reach dockernetd at {args.socket}: {exc}", file=sys.stderr)
        return 3
    print(json.dumps(result, indent=2, sort_keys=True) if args.json else render(method, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
