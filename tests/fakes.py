"""A kernel and proxies in memory, so the handlers, portmapper, links and restore run without root.

:class:`FakeKernel` answers the calls the daemon makes to the kernel worker: the
firewall is a multiset of rules (a delete of a rule that is not there fails, as
iptables' does), bridges a dict of name -> address, veth pairs a dict of host end
-> what was asked for, and the routes a list the test sets.  :class:`FakeProxies` binds nothing; a host port in ``taken`` fails
to bind, as one held by another process would.  The real kernel is tested in
integration/ against the same handlers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface
from typing import Any

import trio

from dockernetd.config import Config
from dockernetd.driver import Driver, default_spec
from dockernetd.errors import FirewallFailed
from dockernetd.kernel import bridge as bridges
from dockernetd.kernel import plumbing
from dockernetd.kernel.conntrack import forget_udp
from dockernetd.kernel.firewall import FirewallBackend
from dockernetd.kernel.plumbing import Plumbing
from dockernetd.links import Links
from dockernetd.network import Network, NetworkSpec, PortMapping
from dockernetd.networks import Networks
from dockernetd.portmapper import PortMapper
from dockernetd.proxy import ProxyError
from dockernetd.rules import Rule


class FakeKernel:
    def __init__(self) -> None:
        self.rules: Counter[Rule] = Counter()
        self.bridges: dict[str, IPv4Interface] = {}
        self.bridges_v6: dict[str, IPv6Interface] = {}  # a dual-stack bridge's gateway
        self.routes: list[IPv4Network] = []
        self.refuse = False  # every rule change fails, as a broken iptables would
        self.commits = 0
        self.forgotten_udp: list[tuple[IPv4Address, list[int]]] = []
        self.paused: trio.Event | None = None  # while set and not fired, calls wait on it
        self.changed_by_others = False  # what FirewallBackend.changed_by_others answers next
        self.localnet: list[str] = []  # bridges given route_localnet, in order
        self.ipv6_forwarding = False
        self.veths: dict[str, Plumbing | None] = {}  # by host end; None: made by a test

    async def change_rules(self, insert: Sequence[Rule] = (), delete: Sequence[Rule] = ()) -> None:
        await trio.lowlevel.checkpoint()  # other tasks run meanwhile, as with the real worker
        missing = Counter(delete) - self.rules
        if self.refuse or missing:
            raise FirewallFailed("iptables: Bad rule (does a matching rule exist in that chain?)")
        self.rules = self.rules - Counter(delete) + Counter(insert)
        self.commits += 1

    async def remove_rules(self, rules: Sequence[Rule]) -> None:
        self.rules -= Counter(rules)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        await trio.lowlevel.checkpoint()
        if self.paused is not None:
            await self.paused.wait()
        return self._run(fn, *args)

    def post(self, fn: Callable[..., Any], *args: Any, what: str) -> None:
        self._run(fn, *args)  # at once: nothing can come between, as in the worker's order

    def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if fn is bridges.create_network_bridge:
            name, address = args
            if name in self.bridges:
                raise bridges.DeviceExists(name)
            self.bridges[name] = address
        elif fn is bridges.ensure_bridge:
            name, address = args
            self.bridges[name] = address
        elif fn is bridges.delete_bridge:
            self.bridges.pop(args[0], None)
            self.bridges_v6.pop(args[0], None)
        elif fn is bridges.main_routes:
            return list(self.routes)
        elif fn is bridges.bridge_drift:
            name, address = args
            if self.bridges.get(name) != address:
                return [{"kind": "bridge_missing", "bridge": name}]
            return []
        elif fn is bridges.ensure_ipv6:
            name, gateway = args
            if name not in self.bridges:
                raise bridges.BridgeSetupFailed(f"{name}: no such network interface")
            self.bridges_v6[name] = gateway
        elif fn is bridges.enable_ipv6_forward:
            self.ipv6_forwarding = True
        elif fn is bridges.enable_route_localnet:
            self.localnet.append(args[0])
        elif fn is plumbing.plumb:
            plan = args[0]
            if plan.bridge not in self.bridges:
                raise OSError(f"bridge {plan.bridge} is missing")
            self.veths[plan.host_veth] = plan
        elif fn is plumbing.unplumb:
            there = args[0] in self.veths
            self.veths.pop(args[0], None)
            return there
        elif fn is forget_udp:
            self.forgotten_udp.append((args[0], list(args[1])))
        else:
            raise AssertionError(f"the fake kernel does not do {fn.__name__}")
        return None

    async def firewall(self, fn: Callable[..., Any], *args: Any) -> Any:
        if fn is FirewallBackend.reconcile:
            (desired,) = args
            wanted = Counter(desired)
            missing, extra = wanted - self.rules, self.rules - wanted
            self.rules = wanted
            return list(missing.elements()), [r.save_line() for r in extra.elements()]
        if fn is FirewallBackend.changed_by_others:
            changed, self.changed_by_others = self.changed_by_others, False
            return changed
        if (
            fn is FirewallBackend.drift
        ):  # the boot plan is left out: the fake holds owned rules only
            _, desired = args
            wanted = Counter(desired)
            missing, extra = wanted - self.rules, self.rules - wanted
            return list(missing.elements()), [r.save_line() for r in extra.elements()]
        if fn is FirewallBackend.setup:
            return None
        if fn is FirewallBackend.forget_other_backend:
            return []
        raise AssertionError(f"the fake firewall does not do {fn.__name__}")


@dataclass
class FakeProxy:
    mapping: PortMapping
    container_ip: IPv4Address
    running: bool = True

    def cancel(self) -> None:
        self.running = False

    async def stopped(self) -> None:
        await trio.lowlevel.checkpoint()

    async def stop(self) -> None:
        self.cancel()
        await self.stopped()


@dataclass
class FakeProxies:
    taken: set[tuple[IPv4Address, int, str]] = field(default_factory=set)
    started: list[FakeProxy] = field(default_factory=list)

    async def start(self, mapping: PortMapping, container_ip: IPv4Address) -> FakeProxy:
        if (mapping.host_ip, mapping.host_port, mapping.proto) in self.taken:
            raise ProxyError(
                f"listen {mapping.proto} {mapping.host_ip}:{mapping.host_port}: "
                "bind: address already in use"
            )
        proxy = FakeProxy(mapping, container_ip)
        self.started.append(proxy)
        return proxy

    def running(self) -> list[PortMapping]:
        return [p.mapping for p in self.started if p.running]


def make_driver(
    bridge: str = "172.17.42.1/16", config: Config | None = None, mtu: int = 1500
) -> tuple[Driver, FakeKernel, FakeProxies]:
    """A driver whose default network is up on ``bridge``, over a fake kernel."""
    config = config or Config()
    kernel, proxies = FakeKernel(), FakeProxies()
    address = config.bridge_address or IPv4Interface(bridge)
    kernel.bridges[config.bridge_name] = address
    networks = Networks()
    networks.add(Network(default_spec(config, address, mtu)))
    fake: Any = kernel  # the worker's interface, duck-typed
    driver = Driver(
        networks,
        PortMapper(fake, proxies, iptables=config.iptables),
        Links(fake),
        fake,
        config,
        mtu,
    )
    if config.iptables:  # what the boot's reconcile leaves: the default network's own rules
        kernel.rules = Counter(driver.owned_rules())
    return driver, kernel, proxies


def make_spec(
    name: str = "bridge", bridge: str = "docker0", gateway: str = "172.17.42.1/16", **settings: Any
) -> NetworkSpec:
    """A network's settings with the defaults of a fresh network, some overridden."""
    values: dict[str, Any] = {
        "id": "0" * 64,
        "ip_range": None,
        "internal": False,
        "icc": True,
        "ip_masq": True,
        "mtu": 1500,
        "host_binding_ip": IPv4Address("0.0.0.0"),
        **settings,
    }
    return NetworkSpec(name=name, bridge=bridge, gateway=IPv4Interface(gateway), **values)
