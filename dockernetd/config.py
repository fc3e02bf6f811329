"""The daemon's configuration and Docker 1.4's validation of it.

``validate`` applies the checks of Docker 1.4's ``NewDaemonFromDirectory`` in
its order and with its messages, plus the parse checks Docker made when it
read each flag, so that a bad configuration is refused before anything on the
host is touched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Network
from typing import Any

from .client import DEFAULT_SOCKET
from .cluster import DEFAULT_SUBNET_SIZE, ClusterSettings, parse_store, parse_store_options
from .errors import ConfigError
from .netutil import parse_cidr, parse_host_port, parse_ipv4
from .pools import DEFAULT_POOLS, MAX_SUBNET_V6_SIZE, AddressPool

DEFAULT_BRIDGE = "docker0"
DEFAULT_STATE_DIR = "/run/dockernetd"
FIREWALL_BACKENDS = ("iptables", "nftables")
#: Where dockerd looks for a plugin named dockernetd.
DEFAULT_DOCKER_PLUGIN_SOCKET = "/run/docker/plugins/dockernetd.sock"
DISABLED_BRIDGE = "none"
LOG_LEVELS = ("debug", "info", "warning", "error")
IFNAMSIZ = 16


@dataclass(frozen=True)
class Config:
    bridge: str = ""
    bip: str = ""
    fixed_cidr: str = ""
    iptables: bool = True
    ip_forward: bool = True
    ip_masq: bool = True
    icc: bool = True
    ip: str = "0.0.0.0"
    mtu: int = 0
    socket: str = DEFAULT_SOCKET
    group: str = ""
    log_level: str = "info"
    resolv_conf: str = "/etc/resolv.conf"
    state_dir: str = DEFAULT_STATE_DIR
    metrics_addr: str = ""
    allow_direct_routing: bool = False  # Docker 28: containers reachable by address from outside
    firewall_self_heal: bool = True  # put back at once what another program changes of ours
    docker_plugin: bool = False
    firewall_backend: str = "iptables"  # or "nftables" (Docker 29's flag)
    docker_plugin_socket: str = DEFAULT_DOCKER_PLUGIN_SOCKET
    default_address_pools: tuple[AddressPool, ...] = ()  # () means Docker's defaults
    ipv6: bool = False  # the default network is dual-stack (Docker 1.5's --ipv6)
    ip6tables: bool = True  # the firewall's IPv6 half (Docker 27's default)
    fixed_cidr_v6: str = ""  # its IPv6 subnet (default: a unique-local /64)
    cluster_store: str = ""  # etcd://HOST:PORT[,HOST:PORT…] (Docker 1.9's flag)
    cluster_advertise: str = ""
    cluster_network: str = ""
    cluster_subnet_size: int = DEFAULT_SUBNET_SIZE
    cluster_store_opts: tuple[tuple[str, str], ...] = ()  # discovery.ttl, discovery.heartbeat

    # The addresses as the daemon uses them (the fields keep the flags' text, as given):

    @cached_property
    def bridge_address(self) -> IPv4Interface | None:
        return parse_cidr(self.bip) if self.bip else None

    @cached_property
    def fixed_subnet(self) -> IPv4Network | None:
        return parse_cidr(self.fixed_cidr).network if self.fixed_cidr else None

    @cached_property
    def fixed_subnet_v6(self) -> IPv6Network | None:
        return IPv6Network(self.fixed_cidr_v6, strict=False) if self.fixed_cidr_v6 else None

    @cached_property
    def binding_ip(self) -> IPv4Address:
        return parse_ipv4(self.ip)

    @cached_property
    def cluster(self) -> ClusterSettings | None:
        """The cluster flags, parsed (validate checked them); None without a store."""
        if not self.cluster_store:
            return None
        ttl, heartbeat = parse_store_options(dict(self.cluster_store_opts))
        return ClusterSettings(
            parse_store(self.cluster_store),
            parse_ipv4(self.cluster_advertise),
            parse_cidr(self.cluster_network).network,
            self.cluster_subnet_size,
            ttl,
            heartbeat,
        )

    @property
    def address_pools(self) -> tuple[AddressPool, ...]:
        return self.default_address_pools or DEFAULT_POOLS

    @property
    def network_disabled(self) -> bool:
        return self.bridge == DISABLED_BRIDGE

    @property
    def bridge_name(self) -> str:
        return self.bridge or DEFAULT_BRIDGE

    @property
    def using_default_bridge(self) -> bool:
        return not self.bridge

    def job_env(self) -> dict[str, Any]:
        """The environment Docker gave the ``init_networkdriver`` job."""
        return {
            "EnableIptables": self.iptables,
            "InterContainerCommunication": self.icc,
            "EnableIpForward": self.ip_forward,
            "EnableIpMasq": self.ip_masq,
            "BridgeIface": self.bridge,
            "BridgeIP": self.bip,
            "FixedCIDR": self.fixed_cidr,
            "DefaultBindingIP": self.ip,
        }

    def public(self) -> dict[str, Any]:
        """The configuration as ``status`` reports it (Docker's daemon.json key names)."""
        return {
            "bridge": self.bridge_name,
            "bip": self.bip,
            "fixed-cidr": self.fixed_cidr,
            "iptables": self.iptables,
            "ip-forward": self.ip_forward,
            "ip-masq": self.ip_masq,
            "icc": self.icc,
            "ip": self.ip,
            "mtu": self.mtu,
            "metrics-addr": self.metrics_addr,
            "allow-direct-routing": self.allow_direct_routing,
            "firewall-self-heal": self.firewall_self_heal,
            "docker-plugin": self.docker_plugin,
            "firewall-backend": self.firewall_backend,
            "docker-plugin-socket": self.docker_plugin_socket,
            "default-address-pools": [  # [] means Docker's defaults
                {"base": str(pool.base), "size": pool.size} for pool in self.default_address_pools
            ],
            "ipv6": self.ipv6,
            "fixed-cidr-v6": self.fixed_cidr_v6,
            "ip6tables": self.ip6tables,
            "cluster-store": self.cluster_store,
            "cluster-advertise": self.cluster_advertise,
            "cluster-network": self.cluster_network,
            "cluster-subnet-size": self.cluster_subnet_size,
            "cluster-store-opts": dict(self.cluster_store_opts),
        }


def validate(config: Config) -> Config:
    """Docker 1.4's checks, in its order; returns the config as the daemon will use it."""
    try:
        parse_ipv4(config.ip)
    except ValueError:
        raise ConfigError(f"{config.ip} is not an ip address") from None
    if config.bridge and config.bip:
        raise ConfigError(
            "You specified -b & --bip, mutually exclusive options. Please specify only one."
        )
    if not config.iptables and not config.icc:
        raise ConfigError(
            "You specified --iptables=false with --icc=false. ICC uses iptables to function. "
            "Please set --icc or --iptables to true."
        )
    if not config.iptables and config.ip_masq:
        config = dataclasses.replace(config, ip_masq=False)  # 1.3.1+: quietly, no error
    if not config.iptables and config.ip6tables:
        config = dataclasses.replace(config, ip6tables=False)  # the same for its IPv6 half
    for value in (config.bip, config.fixed_cidr):
        if value:
            try:
                parse_cidr(value)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
    if len(config.bridge_name.encode()) >= IFNAMSIZ:
        raise ConfigError(f"Interface name {config.bridge_name} too long")
    if config.mtu != 0 and not 68 <= config.mtu <= 65535:
        raise ConfigError(f"invalid MTU {config.mtu}: must be 0 (automatic) or 68-65535")
    if config.metrics_addr:
        try:
            parse_host_port(config.metrics_addr)
        except ValueError:
            raise ConfigError(
                f"invalid metrics-addr {config.metrics_addr!r}: want HOST:PORT with an IP "
                "address, e.g. 127.0.0.1:9323 or [::1]:9323"
            ) from None
    if config.firewall_backend not in FIREWALL_BACKENDS:
        raise ConfigError(
            f"invalid firewall-backend {config.firewall_backend!r}: must be one of "
            + ", ".join(FIREWALL_BACKENDS)
        )
    if config.docker_plugin and config.network_disabled:
        raise ConfigError("--docker-plugin serves networks: it cannot be used with -b none")
    if config.fixed_cidr_v6:
        try:
            subnet = IPv6Network(config.fixed_cidr_v6, strict=False)
        except ValueError:
            raise ConfigError(f"invalid fixed-cidr-v6: {config.fixed_cidr_v6}") from None
        if not config.ipv6:
            raise ConfigError(
                "--fixed-cidr-v6 is the default network's IPv6 subnet: it needs --ipv6"
            )
        if subnet.prefixlen > MAX_SUBNET_V6_SIZE:
            raise ConfigError(
                f"invalid fixed-cidr-v6: {config.fixed_cidr_v6} is too small: at most "
                f"/{MAX_SUBNET_V6_SIZE}"
            )
    _validate_cluster(config)
    if config.log_level not in LOG_LEVELS:
        raise ConfigError(
            f"invalid log level {config.log_level!r}: must be one of {', '.join(LOG_LEVELS)}"
        )
    return config


def _validate_cluster(config: Config) -> None:
    """The cluster flags: Docker 1.12's messages where it had them."""
    if not config.cluster_store:
        if config.cluster_advertise:
            raise ConfigError(
                "invalid cluster configuration. --cluster-advertise must be accompanied by "
                "--cluster-store configuration"
            )
        return
    try:
        parse_store(config.cluster_store)
        parse_store_options(dict(config.cluster_store_opts))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not config.cluster_advertise:
        raise ConfigError(
            "invalid cluster configuration. --cluster-store must be accompanied by "
            "--cluster-advertise (the address other hosts route this host's subnet via)"
        )
    try:
        parse_ipv4(config.cluster_advertise)
    except ValueError:
        raise ConfigError(
            f"discovery advertise parsing failed ({config.cluster_advertise!r} is not an "
            "IPv4 address)"
        ) from None
    if not config.cluster_network:
        raise ConfigError("--cluster-store needs --cluster-network, the pool to lease from")
    try:
        pool = parse_cidr(config.cluster_network).network
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not pool.prefixlen <= config.cluster_subnet_size <= 30:
        raise ConfigError(
            f"invalid cluster-subnet-size {config.cluster_subnet_size}: must be between the "
            f"pool's prefix length ({pool.prefixlen}) and 30"
        )
    if config.bip or config.fixed_cidr or config.bridge:
        raise ConfigError(
            "--cluster-store leases the default bridge's subnet: it cannot be used with "
            "--bip, --fixed-cidr or -b"
        )
