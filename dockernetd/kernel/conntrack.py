"""Forgetting UDP flows of a host port, so a remapped port is not still sent to the old container.

A UDP client that keeps its source port keeps matching the kernel's conntrack entry,
and with it the DNAT decision made for its first datagram, for as long as it keeps
talking: removing or remapping the rule changes nothing for it (moby#8795,
containernetworking/plugins#123).  Deleting the entries when a UDP mapping goes or
comes fixes that.  Only the kernel worker calls this.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .worker import KernelContext

log = logging.getLogger("dockernetd.conntrack")


def forget_udp(ctx: KernelContext, host_ip: IPv4Address, host_ports: Iterable[int]) -> None:
    """Forget the UDP flows of each published port (run with ``kernel.call``)."""
    for host_port in host_ports:
        forgotten = ctx.conntrack.forget_udp(host_ip, host_port)
        if forgotten:
            log.info("forgot %d udp conntrack entries of %s:%d", forgotten, host_ip, host_port)


class ConntrackTable:
    def __init__(self) -> None:
        from pyroute2 import Conntrack

        self._ct = Conntrack()

    def close(self) -> None:
        self._ct.close()

    def forget_udp(self, host_ip: IPv4Address, host_port: int) -> int:
        """Delete the UDP entries whose original destination is the host port; how many."""
        from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

        daddr = None if host_ip.packed == bytes(4) else str(host_ip)
        wanted = NFCTAttrTuple(proto=socket.IPPROTO_UDP, dport=host_port, daddr=daddr)
        entries = list(self._ct.dump_entries(tuple_orig=wanted))
        for entry in entries:
            self._ct.delete(entry)
        return len(entries)
