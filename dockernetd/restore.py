"""Reconcile at boot: the recorded state back into the allocators, proxies and firewall.

Runs after init_networkdriver and before the socket is served (and READY=1):

1. load the state file (lines that are torn or corrupt are dropped, with the reason);
2. re-allocate every interface at its recorded address and MAC (one that no longer
   fits the bridge network or ``--fixed-cidr`` is dropped, with the reason);
3. re-take every published port and restart its proxy (a port some other process
   took meanwhile is dropped, with the reason);
4. make the firewall hold exactly the rules of what was kept: missing ones are
   added, rules in the DOCKER chain or tagged ``dockernetd:`` that nothing owns are
   deleted, nothing is duplicated; the rules that are already right are never
   touched, so published ports keep forwarding across the restart;
5. rewrite the state file with what was kept.
"""

from __future__ import annotations

import logging
from ipaddress import IPv4Address

from .driver import BridgeDriver
from .errors import ApiError, StartupError
from .kernel.firewall import FirewallError
from .kernel.worker import KernelWorker
from .links import parse_port
from .netutil import parse_mac
from .proxy import ProxyError
from .rules import Rule
from .state import Snapshot, StateLog

log = logging.getLogger("dockernetd.restore")


async def restore(driver: BridgeDriver, state: StateLog, kernel: KernelWorker) -> Snapshot:
    """Bring the recorded state back; the snapshot of what was kept."""
    for problem in state.load():
        log.warning("state: %s", problem)
    recorded = state.snapshot
    kept = Snapshot()
    network = driver.network
    for container, iface in recorded.interfaces.items():
        try:
            network.allocate_interface(container, IPv4Address(iface["ip"]), parse_mac(iface["mac"]))
        except (ApiError, ValueError) as exc:
            log.warning("state: interface %s (%s) dropped: %s", container, iface["ip"], _why(exc))
            continue
        kept.apply({"t": "iface", "id": container, **iface})
    for mapping in recorded.ports.values():
        described = f"{mapping['host_ip']}:{mapping['host_port']}/{mapping['proto']}"
        held = network.interfaces.get(mapping["id"])
        if held is None:
            log.warning(
                "state: port %s dropped: its container %s is gone", described, mapping["id"]
            )
            continue
        try:
            await driver.mapper.map(
                held,
                mapping["proto"],
                IPv4Address(mapping["host_ip"]),
                [(int(mapping["host_port"]), int(mapping["container_port"]))],
                with_rules=False,
            )
        except (ApiError, ProxyError, ValueError) as exc:
            log.warning("state: port %s dropped: %s", described, _why(exc))
            continue
        kept.apply({"t": "port", **mapping})
    for link in recorded.links.values():
        try:
            proto, port = parse_port(f"{link['port']}/{link['proto']}")
            key = (IPv4Address(link["parent"]), IPv4Address(link["child"]), proto, port)
        except (ApiError, ValueError) as exc:
            log.warning("state: link %s dropped: %s", link, _why(exc))
            continue
        driver.links.active.add(key)
        kept.apply({"t": "link", **link})
    if driver.mapper.iptables:  # without: published ports are proxies only, no rules
        await _reconcile_firewall(driver, kernel)
    state.rewrite(kept)
    log.info(
        "state: restored %d interfaces, %d ports, %d links",
        len(kept.interfaces),
        len(kept.ports),
        len(kept.links),
    )
    return kept


async def _reconcile_firewall(driver: BridgeDriver, kernel: KernelWorker) -> None:
    desired: list[Rule] = [
        *driver.mapper.rules(driver.network.interfaces.values()),
        *driver.links.rules(),
    ]
    try:
        added, removed = await kernel.call(lambda ctx: ctx.firewall.reconcile(desired))
    except FirewallError as exc:
        raise StartupError(f"Unable to reconcile iptables: {exc}") from exc
    for rule in added:
        log.info("firewall: re-added %s", rule.save_line())
    for line in removed:
        log.info("firewall: removed %s (nothing owns it)", line)


def _why(exc: Exception) -> str:
    return exc.message if isinstance(exc, ApiError) else str(exc)
