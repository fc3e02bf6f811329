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

from .client import Client, RpcError
from .config import DEFAULT_SOCKET


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

    a = sub.add_parser("allocate-interface", help="an address for a container")
    a.add_argument("id")
    a.add_argument("--ip", help="request this address")
    a.add_argument("--mac", help="request this MAC address")

    r = sub.add_parser("release-interface", help="free a container's address and ports")
    r.add_argument("id")

    ap = sub.add_parser("allocate-port", help="publish a container port on the host")
    ap.add_argument("id")
    ap.add_argument("container_port", metavar="CPORT", type=int)
    ap.add_argument("--proto", choices=("tcp", "udp"), default="tcp")
    ap.add_argument("--host-ip")
    ap.add_argument("--host-port", type=int, default=0)
    ap.add_argument("--count", type=int, help="publish CPORT..CPORT+COUNT-1 (allocate_port_range)")

    lk = sub.add_parser("link", help="allow a parent to reach a child's ports")
    lk.add_argument("action", choices=("add", "remove"))
    lk.add_argument("parent_ip", metavar="PARENT_IP")
    lk.add_argument("child_ip", metavar="CHILD_IP")
    lk.add_argument("ports", metavar="PORT/PROTO", nargs="+")
    lk.add_argument("--ignore-errors", action="store_true")

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
    if command == "allocate-interface":
        params = {"id": args.id, "requested_ip": args.ip, "requested_mac": args.mac}
        return "allocate_interface", {k: v for k, v in params.items() if v is not None}
    if command == "release-interface":
        return "release_interface", {"id": args.id}
    if command == "allocate-port":
        params = {
            "id": args.id,
            "container_port": args.container_port,
            "proto": args.proto,
            "host_port": args.host_port,
        }
        if args.host_ip:
            params["host_ip"] = args.host_ip
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
        }
    params = json.loads(args.params)
    if not isinstance(params, dict):
        raise ValueError("params must be a JSON object")
    return args.method, params


def render(method: str, result: Any) -> str:
    """A result as a person reads it."""
    if method == "list_interfaces":
        if not result:
            return "no interfaces"
        lines = [f"{'ID':<24} {'IP':<16} {'MAC':<18} PORTS"]
        for iface in result:
            ports = ", ".join(
                f"{p['host_ip']}:{p['host_port']}->{p['container_port']}/{p['proto']}"
                for p in iface["ports"]
            )
            lines.append(f"{iface['id']:<24} {iface['ip']:<16} {iface['mac_address']:<18} {ports}")
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
