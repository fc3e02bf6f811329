"""Command-line flags and the JSON config file, turned into a validated Config.

The flags are Docker 1.4's daemon network flags (``--icc=false`` style
booleans, parsed like Go's ``strconv.ParseBool``) plus the daemon's own
(``--socket``, ``--group``, ``--config-file``, ``--log-level``,
``--resolv-conf``).  The config file uses Docker's ``daemon.json`` keys; a key
set both by a flag and in the file is an error, as in Docker.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any, NoReturn

from . import __version__
from .client import DEFAULT_SOCKET
from .config import DEFAULT_DOCKER_PLUGIN_SOCKET, LOG_LEVELS, Config, validate
from .errors import ConfigError
from .pools import AddressPool, parse_pool, pool_of

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}

#: daemon.json key -> (Config field, expected JSON type)
FILE_KEYS: dict[str, tuple[str, type]] = {
    "bridge": ("bridge", str),
    "bip": ("bip", str),
    "fixed-cidr": ("fixed_cidr", str),
    "iptables": ("iptables", bool),
    "ip-forward": ("ip_forward", bool),
    "ip-masq": ("ip_masq", bool),
    "icc": ("icc", bool),
    "ip": ("ip", str),
    "mtu": ("mtu", int),
    "log-level": ("log_level", str),
    "metrics-addr": ("metrics_addr", str),
    "allow-direct-routing": ("allow_direct_routing", bool),
    "firewall-self-heal": ("firewall_self_heal", bool),
    "docker-plugin": ("docker_plugin", bool),
    "firewall-backend": ("firewall_backend", str),
    "docker-plugin-socket": ("docker_plugin_socket", str),
    "default-address-pools": ("default_address_pools", list),
    "ipv6": ("ipv6", bool),
    "fixed-cidr-v6": ("fixed_cidr_v6", str),
    "ip6tables": ("ip6tables", bool),
    "cluster-store": ("cluster_store", str),
    "cluster-advertise": ("cluster_advertise", str),
    "cluster-network": ("cluster_network", str),
    "cluster-subnet-size": ("cluster_subnet_size", int),
    "cluster-store-opts": ("cluster_store_opts", dict),
}


def parse_bool(text: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="dockernetd",
        description="Docker 1.x's bridge network driver as a daemon: it sets up the bridge "
        "at start (init_networkdriver) and serves allocate_interface, release_interface, "
        "allocate_port and link over JSON-RPC on a Unix socket.",
        argument_default=argparse.SUPPRESS,
    )

    def flag_bool(name: str, help_text: str) -> None:
        p.add_argument(name, type=parse_bool, nargs="?", const=True, metavar="BOOL", help=help_text)

    p.add_argument(
        "-b",
        "--bridge",
        metavar="NAME",
        help="attach to this existing bridge instead of creating docker0; "
        "'none' disables networking (default: docker0, created if missing)",
    )
    p.add_argument(
        "--bip",
        metavar="CIDR",
        help="address and prefix of the bridge, e.g. 172.17.42.1/16 (not with -b)",
    )
    p.add_argument(
        "--fixed-cidr",
        dest="fixed_cidr",
        metavar="CIDR",
        help="hand out container addresses only from this IPv4 subnet of the bridge network",
    )
    flag_bool(
        "--iptables", "add the iptables rules for NAT, icc and published ports (default: true)"
    )
    flag_bool("--ip-forward", "enable net.ipv4.ip_forward (default: true)")
    flag_bool(
        "--ip-masq",
        "masquerade traffic leaving the bridge network (default: true; off when --iptables=false)",
    )
    flag_bool("--icc", "allow traffic between containers (default: true)")
    flag_bool(
        "--allow-direct-routing",
        "let other hosts reach containers by their address, not only through published ports "
        "(default: false, as Docker 28)",
    )
    flag_bool(
        "--firewall-self-heal",
        "notice within 0.5 s when another program changes the daemon's rules (iptables -F, "
        "a firewall manager's reload) and put them back; false leaves that to verify --repair "
        "(default: true)",
    )
    p.add_argument(
        "--ip",
        metavar="IP",
        help="default host IP when publishing ports (default: 0.0.0.0)",
    )
    p.add_argument(
        "--mtu",
        type=int,
        metavar="BYTES",
        help="MTU reported for container interfaces; 0 = the default route's, or 1500 (default: 0)",
    )
    p.add_argument(
        "--socket", metavar="PATH", help=f"JSON-RPC Unix socket (default: {DEFAULT_SOCKET})"
    )
    p.add_argument(
        "--group",
        metavar="GROUP",
        help="group that may use the socket (mode 0660, owner root; default: root only)",
    )
    p.add_argument(
        "--config-file",
        dest="config_file",
        metavar="PATH",
        help="JSON file with Docker daemon.json keys: bridge, bip, fixed-cidr, iptables, "
        "ip-forward, ip-masq, icc, ip, mtu, log-level, metrics-addr, default-address-pools, "
        "allow-direct-routing, firewall-self-heal, firewall-backend, docker-plugin, "
        "docker-plugin-socket, ipv6, fixed-cidr-v6, ip6tables, cluster-store, cluster-advertise, "
        "cluster-network, cluster-subnet-size, cluster-store-opts; "
        "a key may not also be "
        "given as a flag; SIGHUP re-reads it and applies log-level",
    )
    p.add_argument("--log-level", dest="log_level", choices=LOG_LEVELS, help="(default: info)")
    p.add_argument(
        "--resolv-conf",
        dest="resolv_conf",
        metavar="PATH",
        help="nameservers the default bridge subnet must not overlap (default: /etc/resolv.conf)",
    )
    p.add_argument(
        "--state-dir",
        dest="state_dir",
        metavar="DIR",
        help="where interfaces, ports and links are recorded to survive a restart; keep it "
        "on tmpfs, like the bridge it describes (default: /run/dockernetd)",
    )
    p.add_argument(
        "--metrics-addr",
        dest="metrics_addr",
        metavar="HOST:PORT",
        help="serve Prometheus metrics over HTTP at http://HOST:PORT/metrics, e.g. "
        "127.0.0.1:9323 or [::1]:9323 (default: off)",
    )
    p.add_argument(
        "--firewall-backend",
        dest="firewall_backend",
        metavar="NAME",
        help="iptables: Docker 1.x's rules in legacy iptables; nftables: the same in one "
        "nftables table, inet dockernetd, where a published port, a link or an endpoint is "
        "an element of a set (default: iptables)",
    )
    flag_bool(
        "--docker-plugin",
        "also serve Docker's network and IPAM plugin API, so that dockerd's networks can use "
        "the driver dockernetd (docker network create -d dockernetd --ipam-driver dockernetd) "
        "(default: false)",
    )
    p.add_argument(
        "--docker-plugin-socket",
        dest="docker_plugin_socket",
        metavar="PATH",
        help="the plugin API's Unix socket (mode 0600), where dockerd looks for plugins "
        f"(default: {DEFAULT_DOCKER_PLUGIN_SOCKET})",
    )
    p.add_argument(
        "--default-address-pool",
        dest="default_address_pools",
        action="append",
        type=_pool,
        metavar="base=CIDR,size=N",
        help="where networks created without a subnet get one, e.g. base=10.10.0.0/16,size=24; "
        "repeatable, replaces the defaults (172.17-31.0.0/16 as /16s, 192.168.0.0/16 as /20s)",
    )
    flag_bool(
        "--ipv6",
        "give the default network an IPv6 subnet too (--fixed-cidr-v6, or a unique-local /64 "
        "derived from the machine id): containers get both families (default: false)",
    )
    p.add_argument(
        "--fixed-cidr-v6",
        dest="fixed_cidr_v6",
        metavar="CIDR",
        help="the default network's IPv6 subnet, e.g. 2001:db8:1::/64 (needs --ipv6)",
    )
    flag_bool(
        "--ip6tables",
        "the same rules for IPv6 in ip6tables (or the nftables table): masquerade, icc, "
        "isolation, published ports (default: true, as Docker 27; off when --iptables=false)",
    )
    p.add_argument(
        "--cluster-store",
        dest="cluster_store",
        metavar="etcd://HOST:PORT[,HOST:PORT...]",
        help="lease the default bridge's subnet from this etcd, and route to the other hosts' "
        "subnets (default: off; see the README's Many hosts)",
    )
    p.add_argument(
        "--cluster-advertise",
        dest="cluster_advertise",
        metavar="IP",
        help="this host's address on the segment the hosts share: the others route its "
        "subnet via it",
    )
    p.add_argument(
        "--cluster-network",
        dest="cluster_network",
        metavar="CIDR",
        help="the pool every host's subnet is leased from, e.g. 10.200.0.0/16",
    )
    p.add_argument(
        "--cluster-subnet-size",
        dest="cluster_subnet_size",
        type=int,
        metavar="N",
        help="the prefix length of each host's subnet (default: 24)",
    )
    p.add_argument(
        "--cluster-store-opt",
        dest="cluster_store_opts",
        action="append",
        type=_store_option,
        metavar="KEY=VALUE",
        help="discovery.ttl=SECONDS (how long a dead host's subnet stays leased; default 60) "
        "or discovery.heartbeat=SECONDS (between keepalives; default 20); repeatable",
    )
    p.add_argument("--version", action="version", version=f"dockernetd {__version__}")
    return p


def _pool(text: str) -> AddressPool:
    try:
        return parse_pool(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _store_option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"invalid cluster-store-opt {text!r}: want KEY=VALUE")
    return key, value


def _pools_from_file(path: str, value: list[Any]) -> tuple[AddressPool, ...]:
    """daemon.json's ``default-address-pools``: ``[{"base": CIDR, "size": N}, ...]``."""
    pools = []
    for entry in value:
        if not isinstance(entry, dict) or set(entry) != {"base", "size"}:
            raise ConfigError(
                f"invalid value for 'default-address-pools' in config file {path}: "
                'expected [{"base": CIDR, "size": N}, ...]'
            )
        try:
            pools.append(pool_of(entry["base"], entry["size"]))
        except ValueError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
    return tuple(pools)


def _store_options_from_file(path: str, value: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    if not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(
            f"invalid value for 'cluster-store-opts' in config file {path}: "
            'expected {"KEY": "VALUE", ...}'
        )
    return tuple(value.items())


def load_config_file(path: str) -> dict[str, Any]:
    """The config file as Config field values; ConfigError on anything unexpected."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except OSError as exc:
        raise ConfigError(f"unable to read config file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"config file {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    unknown = sorted(set(raw) - set(FILE_KEYS))
    if unknown:
        raise ConfigError(
            "the following directives don't match any configuration option: " + ", ".join(unknown)
        )
    values = {}
    for key, value in raw.items():
        field, kind = FILE_KEYS[key]
        if type(value) is not kind:  # bool is an int subclass; be exact
            raise ConfigError(
                f"invalid value for {key!r} in config file {path}: expected {kind.__name__}"
            )
        if isinstance(value, list):
            value = _pools_from_file(path, value)
        elif isinstance(value, dict):  # cluster-store-opts: {"discovery.ttl": "60"}
            value = _store_options_from_file(path, value)
        values[field] = value
    return values


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """Flags (and the config file they name) as a validated Config; ConfigError if bad."""
    given = vars(build_parser().parse_args(argv))
    config_file = given.pop("config_file", None)
    if config_file:
        from_file = load_config_file(config_file)
        both = sorted(set(from_file) & set(given))
        if both:
            key_of = {field: key for key, (field, _) in FILE_KEYS.items()}
            detail = ", ".join(
                f"{key_of[k]}: (from flag: {given[k]}, from file: {from_file[k]})" for k in both
            )
            raise ConfigError(
                "the following directives are specified both as a flag and in the "
                f"configuration file: {detail}"
            )
        given.update(from_file)
    for listed in ("default_address_pools", "cluster_store_opts"):
        if listed in given:
            given[listed] = tuple(given[listed])
    return validate(Config(**given))
