"""The cluster's routes: each other host's subnet via its advertise address (host-gw)."""

from __future__ import annotations

import errno
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .worker import KernelContext


def cluster_routes(ctx: KernelContext) -> dict[IPv4Network, IPv4Address]:
    """The routes the cluster made, as the kernel has them (also those of a daemon before)."""
    return ctx.netlink.cluster_routes()


def change_cluster_routes(
    ctx: KernelContext, place: Mapping[IPv4Network, IPv4Address], delete: Sequence[IPv4Network]
) -> dict[IPv4Network, str]:
    """Replace the routes of ``place`` and delete those of ``delete``; what failed, and why
    (a gateway that is not on a link of this host: ENETUNREACH)."""
    failed: dict[IPv4Network, str] = {}
    for destination in delete:
        try:
            ctx.netlink.delete_cluster_route(destination)
        except OSError as exc:
            if exc.errno != errno.ESRCH:  # gone already
                failed[destination] = exc.strerror or str(exc)
    for destination, gateway in place.items():
        try:
            ctx.netlink.replace_cluster_route(destination, gateway)
        except OSError as exc:
            failed[destination] = f"via {gateway}: {exc.strerror or exc}"
    return failed
