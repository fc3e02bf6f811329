"""Docker 1.4's iptables rules, as data.

Theory of operation: every rule the daemon ever writes is a :class:`Rule` made
here — a table, a chain and its arguments exactly as ``iptables-save`` prints
them after ``-A <chain>`` — so the firewall adapter only has to apply, index and
delete them, and the tests can compare the planner's output and the kernel's
``iptables-save`` line for line.

The rules are Docker 1.4's (``setupIPTables``, ``iptables.Forward``, the link
handler) with one addition: every rule the daemon puts in the shared FORWARD
chain for a mapping or a link carries a comment match, ``dockernetd:<container
id>`` or ``dockernetd:link``, so that a restart or a cleanup finds exactly the
rules it owns (Docker 1.x leaked its FORWARD accept rules across restarts).
The DNAT rules need no tag: the nat DOCKER chain is the daemon's, all of it,
and the 288 bytes a comment adds to each rule would double the size of the
table that every published port rewrites (legacy iptables replaces a whole
table per commit).  Boot rules carry no tag either: they are Docker's own and
shared with anything that expects them.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

NAT = "nat"
FILTER = "filter"
DOCKER_CHAIN = "DOCKER"
OWNER_TAG = "dockernetd:"
LINK_TAG = OWNER_TAG + "link"


@dataclass(frozen=True)
class Rule:
    table: str
    chain: str
    args: tuple[str, ...]

    def save_line(self) -> str:
        """The rule as ``iptables-save`` prints it."""
        return " ".join(["-A", self.chain, *(_quote(a) for a in self.args)])


def _quote(arg: str) -> str:
    return f'"{arg}"' if arg.startswith(OWNER_TAG) else arg


@dataclass(frozen=True)
class BootPlan:
    """init_networkdriver's firewall side, in Docker 1.4's order.

    ``absent`` rules are deleted if present (the opposite icc rule); each of
    ``present`` is inserted at the top of its chain if it is not there yet; then
    the nat DOCKER chain is recreated empty with ``jumps`` appended.
    """

    absent: tuple[Rule, ...]
    present: tuple[Rule, ...]
    jumps: tuple[Rule, ...]


def _rule(table: str, chain: str, args: str, comment: str = "") -> Rule:
    """A rule from its save form; values never hold spaces (names and ids are validated).

    The owner tag goes where iptables-save prints it: after the matches, before -j.
    """
    words = tuple(args.split())
    if comment:
        jump = words.index("-j")
        words = (*words[:jump], "-m", "comment", "--comment", comment, *words[jump:])
    return Rule(table, chain, words)


def boot_plan(bridge: str, network: IPv4Network, *, icc: bool, ip_masq: bool) -> BootPlan:
    present = []
    if ip_masq:
        present.append(_rule(NAT, "POSTROUTING", f"-s {network} ! -o {bridge} -j MASQUERADE"))
    accept = _rule(FILTER, "FORWARD", f"-i {bridge} -o {bridge} -j ACCEPT")
    drop = _rule(FILTER, "FORWARD", f"-i {bridge} -o {bridge} -j DROP")
    present.append(accept if icc else drop)
    present.append(_rule(FILTER, "FORWARD", f"-i {bridge} ! -o {bridge} -j ACCEPT"))
    present.append(
        _rule(
            FILTER, "FORWARD", f"-o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
        )
    )
    return BootPlan(absent=(drop if icc else accept,), present=tuple(present), jumps=DOCKER_JUMPS)


#: Local traffic to published ports goes through DOCKER; loopback is left to the proxy.
DOCKER_JUMPS = (
    _rule(NAT, "PREROUTING", f"-m addrtype --dst-type LOCAL -j {DOCKER_CHAIN}"),
    _rule(NAT, "OUTPUT", f"! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j {DOCKER_CHAIN}"),
)

#: What Docker's RemoveExistingChain deleted before recreating DOCKER: today's jumps and
#: the older forms ("versions <= 0.1.6").
STALE_JUMPS = (
    *DOCKER_JUMPS,
    _rule(NAT, "OUTPUT", f"-m addrtype --dst-type LOCAL -j {DOCKER_CHAIN}"),
    _rule(NAT, "PREROUTING", f"-j {DOCKER_CHAIN}"),
    _rule(NAT, "OUTPUT", f"-j {DOCKER_CHAIN}"),
)


#: The tables of the rules of one published port and of one link, in mapping_rules' and
#: link_rules' order: every mapping and every link has rules of this one shape.
MAPPING_RULE_TABLES = (NAT, FILTER)
LINK_RULE_TABLES = (FILTER, FILTER)


def mapping_rules(
    bridge: str,
    container_id: str,
    proto: str,
    host_ip: IPv4Address,
    host_port: int,
    container_ip: IPv4Address,
    container_port: int,
) -> tuple[Rule, Rule]:
    """The DNAT rule in nat DOCKER and the (tagged) FORWARD accept rule of one published port."""
    destination = "" if host_ip.packed == bytes(4) else f"-d {host_ip}/32"
    dnat = _rule(
        NAT,
        DOCKER_CHAIN,
        f"{destination} ! -i {bridge} -p {proto} -m {proto} --dport {host_port} "
        f"-j DNAT --to-destination {container_ip}:{container_port}",
    )
    forward = _rule(
        FILTER,
        "FORWARD",
        f"-d {container_ip}/32 ! -i {bridge} -o {bridge} -p {proto} -m {proto} "
        f"--dport {container_port} -j ACCEPT",
        OWNER_TAG + container_id,
    )
    return dnat, forward


def link_rules(
    bridge: str, parent: IPv4Address, child: IPv4Address, proto: str, port: int
) -> tuple[Rule, Rule]:
    """Parent to child's port, and the child's answers back (Docker inserts both with -I)."""
    to_child = _rule(
        FILTER,
        "FORWARD",
        f"-s {parent}/32 -d {child}/32 -i {bridge} -o {bridge} -p {proto} -m {proto} "
        f"--dport {port} -j ACCEPT",
        LINK_TAG,
    )
    to_parent = _rule(
        FILTER,
        "FORWARD",
        f"-s {child}/32 -d {parent}/32 -i {bridge} -o {bridge} -p {proto} -m {proto} "
        f"--sport {port} -j ACCEPT",
        LINK_TAG,
    )
    return to_child, to_parent
