"""``verify``: compare what the daemon believes with what the kernel holds, and repair it.

Drift is reported as a list of ``{"kind": ..., ...}`` entries:

* ``bridge_missing``, ``bridge_address`` (expected/found), ``bridge_down``, for the
  bridge of every network (each entry names its ``network``);
* ``rule_missing`` (a boot rule, or a rule of a network, mapping, link or the
  isolation) and ``rule_extra`` (in the daemon's places, owned by nothing);
* ``proxy_down`` (a published port whose proxy stopped).

With ``repair``, each is put back the way init_networkdriver and the handlers
would have done it; running verify again then reports nothing.  Both are
idempotent.  Containers' veths that were in a deleted bridge are not re-attached:
the daemon never knew their names (the runtime made them).
"""

from __future__ import annotations

import logging
from typing import Any

from .config import Config
from .driver import Driver
from .kernel import bridge as bridges
from .kernel.firewall import FirewallBackend
from .kernel.nftables import TABLE as NFT_TABLE
from .kernel.nftables import describe
from .rules import Rule, boot_plan

log = logging.getLogger("dockernetd.verify")


def shown(config: Config, rule: Rule) -> dict[str, str]:
    """Where a rule is and what it is, as the firewall backend writes it."""
    if config.firewall_backend == "nftables":
        return {"table": NFT_TABLE, "rule": "; ".join(describe(item) for item in rule.nft)}
    return {"table": rule.table, "rule": rule.save_line()}


async def verify(driver: Driver, *, repair: bool) -> dict[str, Any]:
    kernel = driver.kernel
    drift: list[dict[str, Any]] = []
    for network in driver.networks:
        spec = network.spec
        found = await kernel.call(bridges.bridge_drift, spec.bridge, spec.gateway)
        drift += [{**entry, "network": spec.name} for entry in found]
        if repair and found:
            await kernel.call(bridges.ensure_bridge, spec.bridge, spec.gateway)
    if driver.mapper.iptables:
        plan = boot_plan(driver.default.spec)
        desired = driver.owned_rules()
        missing, extra = await kernel.firewall(FirewallBackend.drift, plan, desired)
        drift += [{"kind": "rule_missing", **shown(driver.config, r)} for r in missing]
        drift += [{"kind": "rule_extra", "rule": line} for line in extra]
        if repair and (missing or extra):
            await kernel.firewall(FirewallBackend.setup, plan)
            await kernel.firewall(FirewallBackend.reconcile, desired)
    for mapping in driver.mapper.stopped_proxies():
        drift.append({"kind": "proxy_down", **mapping.public()})
        if repair:
            await driver.mapper.revive(mapping)
    for entry in drift:
        log.warning("verify: drift %s%s", entry, " (repaired)" if repair else "")
    return {"drift": drift, "repaired": repair and bool(drift)}
