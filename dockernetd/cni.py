"""``dockernetd-cni``: a CNI plugin (spec 1.1.0) that is a thin client of the daemon.

A runtime (podman, containerd, CRI-O) execs the plugin for every container: the
network configuration on stdin, the command and the container in the environment
(CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH), the result or an
error as JSON on stdout.  Everything that touches the kernel happens in the daemon
(``allocate_interface`` with ``netns`` makes the veth pair), so this imports only
the standard library and the package's small client and errors: its start-up is part of
every container start.

In a conflist, ``{"type": "dockernetd", "network": "<dockernetd network>"}``;
``"socket"`` if the daemon is not at its default path.  An attachment is the
daemon's endpoint ``<CNI_CONTAINERID>.<CNI_IFNAME>`` on that network.
"""

from __future__ import annotations

import json
import os
import re
import sys

from .client import DEFAULT_SOCKET, Client, RpcError
from .errors import UnknownContainer, UnknownNetwork

# typing is not imported at run time: it costs ~2 ms of the CNI plugin's start-up, which
# is part of every container start (mypy reads the names below; Python never does).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
#: network.DEFAULT_NETWORK, not imported: network.py pulls in the allocators, and the plugin's
#: start-up is part of every container start.
DEFAULT_NETWORK = "bridge"
_ATTACHMENT = re.compile(r"[A-Za-z0-9_.-]{1,128}")

# CNI's well-known error codes (spec, "Error"); 100 and up are the plugin's own.
INCOMPATIBLE_VERSION = 1
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
DECODING_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50
CHECK_FAILED = 100
DAEMON_REFUSED = 101


class CniError(Exception):
    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details


class Call:
    """One invocation: the environment, the network configuration, and the daemon."""

    def __init__(self, environ: dict[str, str], stdin: str) -> None:
        self.environ = environ
        self.command = environ.get("CNI_COMMAND", "")
        self._client: Client | None = None  # one connection for all the calls of a command
        try:
            self.config: dict[str, Any] = json.loads(stdin) if stdin.strip() else {}
        except ValueError as exc:
            raise CniError(
                DECODING_FAILURE, "cannot decode the network configuration", str(exc)
            ) from None
        if not isinstance(self.config, dict):
            raise CniError(DECODING_FAILURE, "the network configuration is not a JSON object")
        self.version = str(self.config.get("cniVersion", SUPPORTED_VERSIONS[-1]))
        self.network = self.config.get("network", DEFAULT_NETWORK)
        if not isinstance(self.network, str):
            raise CniError(INVALID_CONFIG, "network must be a string")

    def require(self, *names: str) -> list[str]:
        missing = [name for name in names if not self.environ.get(name)]
        if missing:
            raise CniError(INVALID_ENVIRONMENT, f"missing {', '.join(missing)}")
        return [self.environ[name] for name in names]

    @property
    def attachment(self) -> str:
        container, ifname = self.require("CNI_CONTAINERID", "CNI_IFNAME")
        name = f"{container}.{ifname}"
        if not _ATTACHMENT.fullmatch(name):
            raise CniError(
                INVALID_ENVIRONMENT,
                "CNI_CONTAINERID and CNI_IFNAME must be 1-128 of A-Z a-z 0-9 _ . - in all",
            )
        return name

    def daemon(self, method: str, **params: Any) -> Any:
        """Call the daemon: its result, RpcError for its errors, CniError if it is not there."""
        path = self.config.get("socket", DEFAULT_SOCKET)
        try:
            if self._client is None:
                self._client = Client(str(path), timeout=60)
            return self._client.call(method, **params)
        except RpcError:
            raise
        except OSError as exc:
            raise CniError(
                TRY_AGAIN_LATER, f"dockernetd is not answering at {path}", str(exc)
            ) from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def add(call: Call) -> dict[str, Any]:
    netns, ifname = call.require("CNI_NETNS", "CNI_IFNAME")
    runtime = call.config.get("runtimeConfig") or {}
    ports = [  # IPv6 host addresses wait for IPv6 (the daemon's networks are IPv4 today)
        _port_params(mapping)
        for mapping in runtime.get("portMappings") or []
        if ":" not in str(mapping.get("hostIP") or "")
    ]
    params: dict[str, Any] = {
        "id": call.attachment,
        "network": call.network,
        "netns": netns,
        "ifname": ifname,
    }
    ips = [ip.split("/")[0] for ip in runtime.get("ips") or [] if ":" not in ip]
    if ips:
        params["requested_ip"] = ips[0]
    if runtime.get("mac"):
        params["requested_mac"] = runtime["mac"]
    try:
        iface = call.daemon("allocate_interface", **params)
        for port in ports:  # the runtime holds each host port itself: the kernel only
            call.daemon("allocate_port", id=call.attachment, network=call.network, **port)
    except RpcError as exc:
        delete(call)  # all or nothing: a half-added container is not left behind
        raise CniError(DAEMON_REFUSED, exc.message, json.dumps(exc.data)) from None
    return result(call.version, iface)


def _port_params(mapping: Any) -> dict[str, Any]:
    """One of runtimeConfig.portMappings as allocate_port's params (IPv4 host addresses)."""
    try:
        params = {
            "host_port": int(mapping["hostPort"]),
            "container_port": int(mapping["containerPort"]),
            "proto": str(mapping.get("protocol") or "tcp").lower(),
            "proxy": False,
        }
    except (KeyError, TypeError, ValueError):
        raise CniError(INVALID_CONFIG, f"bad portMappings entry {mapping!r}") from None
    if mapping.get("hostIP"):
        params["host_ip"] = mapping["hostIP"]
    return params


def result(version: str, iface: dict[str, Any]) -> dict[str, Any]:
    """ADD's answer in the format of ``version`` (0.3.x and 0.4.0 name each IP's version)."""
    ip = {
        "address": f"{iface['ip']}/{iface['prefix_len']}",
        "gateway": iface["gateway"],
        "interface": 1,
    }
    ips, routes = [ip], [{"dst": "0.0.0.0/0", "gw": iface["gateway"]}]
    if "ipv6" in iface:  # a dual-stack network
        ips.append(
            {
                "address": f"{iface['ipv6']}/{iface['ipv6_prefix_len']}",
                "gateway": iface["ipv6_gateway"],
                "interface": 1,
            }
        )
        routes.append({"dst": "::/0", "gw": iface["ipv6_gateway"]})
    if _release(version) < (1, 0, 0):
        ips = [{"version": "6" if ":" in i["address"] else "4", **i} for i in ips]
    return {
        "cniVersion": version,
        "interfaces": [
            {"name": iface["host_veth"]},
            {"name": iface["ifname"], "mac": iface["mac_address"], "sandbox": iface["netns"]},
        ],
        "ips": ips,
        "routes": routes,
        "dns": {},
    }


def delete(call: Call) -> None:
    """Release the attachment; done already, or never made, is success (the spec's DEL)."""
    try:
        call.daemon("release_interface", id=call.attachment, network=call.network)
    except RpcError as exc:
        if exc.code not in (UnknownContainer.code, UnknownNetwork.code):
            raise CniError(DAEMON_REFUSED, exc.message, json.dumps(exc.data)) from None


def check(call: Call) -> None:
    if _release(call.version) < (0, 4, 0):
        raise CniError(INCOMPATIBLE_VERSION, "CHECK needs cniVersion 0.4.0 or later")
    call.require("CNI_NETNS")
    try:
        found = call.daemon("check_interface", id=call.attachment, network=call.network)
    except RpcError as exc:
        raise CniError(UNKNOWN_CONTAINER, exc.message) from None
    if found["problems"]:
        raise CniError(CHECK_FAILED, "; ".join(found["problems"]))


def status(call: Call) -> None:
    try:
        call.daemon("network_inspect", name=call.network)
    except (RpcError, CniError) as exc:
        raise CniError(
            NOT_AVAILABLE, f"network {call.network} is not available", str(exc)
        ) from None


def garbage_collect(call: Call) -> None:
    """Release every attachment of the network made through CNI that the runtime no
    longer knows (``cni.dev/valid-attachments``)."""
    valid = {
        f"{a.get('containerID')}.{a.get('ifname')}"
        for a in call.config.get("cni.dev/valid-attachments") or []
    }
    try:
        endpoints = call.daemon("network_inspect", name=call.network)["endpoints"]
    except RpcError as exc:
        raise CniError(DAEMON_REFUSED, exc.message) from None
    for endpoint in endpoints:
        if "netns" in endpoint and endpoint["id"] not in valid:
            try:
                call.daemon("release_interface", id=endpoint["id"], network=call.network)
            except RpcError as exc:
                if exc.code != UnknownContainer.code:  # released meanwhile: what GC wants
                    raise CniError(DAEMON_REFUSED, exc.message) from None


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def version(call: Call) -> dict[str, Any]:
    return {"cniVersion": call.version, "supportedVersions": list(SUPPORTED_VERSIONS)}


COMMANDS: dict[str, Callable[[Call], Any]] = {
    "ADD": add,
    "DEL": delete,
    "CHECK": check,
    "STATUS": status,
    "GC": garbage_collect,
    "VERSION": version,
}


def run(environ: dict[str, str], stdin: str) -> tuple[int, dict[str, Any] | None]:
    """The exit code and what to print, for one invocation."""
    call_version = SUPPORTED_VERSIONS[-1]
    call: Call | None = None
    try:
        call = Call(environ, stdin)
        call_version = call.version
        handler = COMMANDS.get(call.command)
        if handler is None:
            raise CniError(INVALID_ENVIRONMENT, f"unknown CNI_COMMAND {call.command!r}")
        if call.command != "VERSION" and call.version not in SUPPORTED_VERSIONS:
            raise CniError(
                INCOMPATIBLE_VERSION,
                f"incompatible CNI version {call.version}",
                f"supported: {', '.join(SUPPORTED_VERSIONS)}",
            )
        return 0, handler(call)
    except CniError as exc:
        error = {"cniVersion": call_version, "code": exc.code, "msg": exc.msg}
        if exc.details:
            error["details"] = exc.details
        return 1, error
    finally:
        if call is not None:
            call.close()


def main() -> NoReturn:
    """The plugin as a program: it ends the process.  With os._exit, once the answer is
    flushed: the interpreter's teardown (~4 ms here, of every container start) has
    nothing to do for us, the daemon's connection being closed already."""
    code, output = run(dict(os.environ), sys.stdin.read())
    if output is not None:
        json.dump(output, sys.stdout)
        sys.stdout.write("\n")
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
