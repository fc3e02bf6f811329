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
from ipaddress import IPv4Address, IPv6Address

from .errors import FirewallFailed, InvalidParams
from .kernel.worker import KernelWorker
from .network import Link
from .rules import link_rules

log = logging.getLogger("dockernetd.links")

ADD_ACTIONS = ("add", "-I", "-A")


def parse_port(text: str) -> tuple[str, int]:
    """``"80/tcp"`` -> ("tcp", 80); no protocol means tcp, as Docker's nat.Port."""
    number, _, proto = text.partition("/")
    port = int(number)
    if not 1 <= port <= 65535:
        raise InvalidParams(f"Bad parameter: ports {text!r}: port must be 1-65535", param="ports")
    return proto or "tcp", port


class Links:
    """The active links of every network (each link's rules use its network's bridge)."""

    def __init__(self, kernel: KernelWorker) -> None:
        self._kernel = kernel
        self.active: dict[Link, None] = {}  # an ordered set

    async def link(
        self,
        network: str,
        bridge: str,
        adding: bool,
        parent: IPv4Address,
        child: IPv4Address,
        ports: list[str],
        ignore_errors: bool,
        addresses_v6: tuple[IPv6Address, IPv6Address] | None = None,
    ) -> list[Link]:
        """Add or remove the rules of every port; the links that changed (2 rules each, 4
        with the containers' IPv6 ``addresses_v6``, parent's and child's)."""
        parsed = [parse_port(p) for p in ports]  # all checked before any change
        changed = []
        for proto, port in parsed:
            link = Link(network, parent, child, proto, port, *(addresses_v6 or (None, None)))
            if adding and link in self.active:
                continue  # already linked: adding again must not duplicate the rules
            if not adding:  # the link as it was made: its IPv6 addresses say its rules
                link = next((held for held in self.active if held == link), link)
            pair = link_rules(bridge, link)
            try:
                # inserted to-child first, so the reply rule ends up above it, as Docker's -I
                if adding:
                    await self._kernel.change_rules(insert=pair)
                else:
                    await self._kernel.change_rules(delete=pair)
            except FirewallFailed as exc:
                if not ignore_errors:
                    raise FirewallFailed(exc.message, port=f"{port}/{proto}") from exc
                action = "add" if adding else "remove"
                log.info(
                    "link %s %s -> %s %d/%s skipped: %s", action, parent, child, port, proto, exc
                )
                continue
            if adding:
                self.active[link] = None
            else:
                self.active.pop(link, None)
            changed.append(link)
        return changed

    def of(self, network: str) -> list[Link]:
        return [link for link in self.active if link.network == network]
