"""Reconcile at boot: the recorded state back into the allocators, proxies and firewall.

Runs after init_networkdriver and before the socket is served (and READY=1):

1. load the state file (lines that are torn or corrupt are dropped, with the reason);
2. bring back every recorded network: its bridge as it was (one that now clashes with
   the default network or cannot be made is dropped, with the reason);
3. re-join every endpoint at its recorded address and MAC, oldest first (one that no
   longer fits its network is dropped, with the reason);
4. re-take every published port and restart its proxy (a port some other process
   took meanwhile is dropped, with the reason);
5. make the firewall hold exactly the rules of what was kept: missing ones are
   added, rules in the daemon's places that nothing owns are deleted, nothing is
   duplicated; the rules that are already right are never touched, so published
   ports keep forwarding across the restart;
6. rewrite the state file with what was kept.
"""

from __future__ import annotations

import logging

from .driver import Driver, restore_network
from .errors import ApiError, FirewallFailed, StartupError
from .kernel.firewall import FirewallBackend
from .network import DEFAULT_NETWORK, Network, NetworkSpec
from .networks import Networks
from .proxy import ProxyError
from .state import Joined, Linked, NetworkCreated, Published, Snapshot, StateLog
from .verify import shown

log = logging.getLogger("dockernetd.restore")


async def restore(driver: Driver, state: StateLog) -> Snapshot:
    """Bring the recorded state back; the snapshot of what was kept."""
    for problem in state.load():
        log.warning("state: %s", problem)
    recorded = state.snapshot
    kept = Snapshot()
    for spec in recorded.networks.values():
        if await _restore_network(driver, spec):
            kept.apply(NetworkCreated(spec))
    for joined in recorded.endpoints.values():
        if _rejoin(driver, joined):
            kept.apply(joined)
    for published in recorded.ports.values():
        if await _republish(driver, published):
            kept.apply(published)
    for link in recorded.links:
        if link.network in driver.networks:
            driver.links.active[link] = None
            kept.apply(Linked(link))
        else:
            log.warning("state: link %s dropped: its network is gone", link.public())
    if driver.mapper.iptables:  # without: published ports are proxies only, no rules
        await _reconcile_firewall(driver)
    state.rewrite(kept)
    log.info(
        "state: restored %d interfaces, %d ports, %d links, %d networks",
        len(kept.endpoints),
        len(kept.ports),
        len(kept.links),
        len(kept.networks),
    )
    return kept


async def _restore_network(driver: Driver, spec: NetworkSpec) -> bool:
    networks = driver.networks
    clash = _clash(networks, spec)
    if clash is not None:
        log.warning("state: network %s dropped: %s", spec.name, clash)
        return False
    try:
        network = Network(spec)
        await restore_network(driver, spec)
    except (ValueError, OSError) as exc:
        log.warning("state: network %s dropped: %s", spec.name, exc)
        return False
    networks.add(network)
    return True


def _clash(networks: Networks, spec: NetworkSpec) -> str | None:
    """Why a recorded network cannot come back beside the ones already there."""
    if spec.name in networks:
        return f"network {spec.name} exists already"
    if (other := networks.on_bridge(spec.bridge)) is not None:
        return f"bridge {spec.bridge} is network {other.name}'s"
    if (other := networks.overlapping(spec.subnet)) is not None:
        return f"subnet {spec.subnet} overlaps network {other.name}"
    return None


def _rejoin(driver: Driver, joined: Joined) -> bool:
    described = f"interface {joined.container_id} ({joined.ip})"
    if joined.network != DEFAULT_NETWORK:
        described += f" on network {joined.network}"
    try:
        network = driver.networks.get(joined.network)
        # a network whose IPv6 was turned off since keeps the endpoint, IPv4 only
        ipv6 = joined.ipv6 if network.ips_v6 is not None else None
        endpoint, _ = driver.networks.join(
            network, joined.container_id, joined.ip, joined.mac_address, ipv6
        )
        endpoint.attachment = joined.attachment  # its veth outlives the daemon
    except ApiError as exc:
        log.warning("state: %s dropped: %s", described, exc.message)
        return False
    return True


async def _republish(driver: Driver, published: Published) -> bool:
    m = published.mapping
    described = f"port {m.host_ip}:{m.host_port}/{m.proto}"
    network = driver.networks.find(published.network)
    endpoint = network.endpoints.get(published.container_id) if network else None
    if network is None or endpoint is None:
        log.warning(
            "state: %s dropped: its container %s is gone", described, published.container_id
        )
        return False
    try:
        await driver.mapper.map(
            network.spec.bridge,
            endpoint,
            m.proto,
            m.host_ip,
            [(m.host_port, m.container_port)],
            with_proxy=m.proxy,
            with_rules=False,
        )
    except (ApiError, ProxyError) as exc:
        log.warning("state: %s dropped: %s", described, exc)
        return False
    return True


async def _reconcile_firewall(driver: Driver) -> None:
    desired = driver.owned_rules()
    try:
        added, removed = await driver.kernel.firewall(FirewallBackend.reconcile, desired)
    except FirewallFailed as exc:  # "Unable to reconcile iptables: <why>"
        raise StartupError(f"Unable to reconcile {exc.message}") from exc
    for rule in added:
        log.info("firewall: re-added %s", shown(driver.config, rule)["rule"])
    for line in removed:
        log.info("firewall: removed %s (nothing owns it)", line)
