"""Container links: FORWARD accept rules from a parent to a child's ports and back.

Docker 1.4's ``link`` handler, with the rules tagged ``dockernetd:link``: for
each port, ``parent -> child:port`` and ``child:port -> parent``, inserted at
the top of FORWARD so they sit above the ``--icc=false`` DROP.  Docker added
them with ``-I`` and ignore_errors false, and removed them with ``-D`` and
ignore_errors true; with ignore_errors a failing port is skipped and the others
still go through.
"""

from __future__ import annotations

import logging
from ipaddress import IPv4Address

from .errors import FirewallFailed, InvalidParams
from .kernel.firewall import FirewallError
from .kernel.worker import KernelWorker
from .rules import Rule, link_rules

log = logging.getLogger("dockernetd.links")

ADD_ACTIONS = ("add", "-I", "-A")


def parse_port(text: str) -> tuple[str, int]:
    """``"80/tcp"`` -> ("tcp", 80); no protocol means tcp, as Docker's nat.Port."""
    number, _, proto = text.partition("/")
    port = int(number)
    if not 1 <= port <= 65535:
        raise InvalidParams(f"Bad parameter: ports {text!r}: port must be 1-65535", param="ports")
    return proto or "tcp", port


LinkKey = tuple[IPv4Address, IPv4Address, str, int]  # parent, child, proto, port


class Links:
    def __init__(self, bridge: str, kernel: KernelWorker) -> None:
        self.bridge = bridge
        self._kernel = kernel
        self.active: set[LinkKey] = set()

    async def link(
        self,
        action: str,
        parent: IPv4Address,
        child: IPv4Address,
        ports: list[str],
        ignore_errors: bool,
    ) -> list[LinkKey]:
        """Add or remove the rules of every port; the links that changed (2 rules each)."""
        adding = action in ADD_ACTIONS
        parsed = [parse_port(p) for p in ports]  # all checked before any change
        changed = []
        for proto, port in parsed:
            key = (parent, child, proto, port)
            if adding and key in self.active:
                continue  # already linked: adding again must not duplicate the rules
            pair = link_rules(self.bridge, parent, child, proto, port)
            try:
                await self._apply(pair, adding)
            except FirewallError as exc:
                if not ignore_errors:
                    raise FirewallFailed(f"iptables: {exc}", port=f"{port}/{proto}") from exc
                log.info(
                    "link %s %s -> %s %d/%s skipped: %s", action, parent, child, port, proto, exc
                )
                continue
            if adding:
                self.active.add(key)
            else:
                self.active.discard(key)
            changed.append(key)
        return changed

    def rules(self) -> list[Rule]:
        """Every rule of the active links (what the firewall should hold for them)."""
        return [r for key in self.active for r in link_rules(self.bridge, *key)]

    async def _apply(self, pair: tuple[Rule, Rule], adding: bool) -> None:
        # inserted to-child first, so the reply rule ends up above it, as with Docker's -I
        if adding:
            await self._kernel.change_rules(insert=pair)
        else:
            await self._kernel.change_rules(delete=pair)
