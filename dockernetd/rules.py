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
The rules of a network other than the default one are the daemon's own too,
all tagged ``dockernetd:net:<name>`` (the default network keeps Docker 1.4's
untagged boot rules).  Isolation between networks is Docker's two-stage form
(17.06+): one jump at the top of FORWARD into ``DOCKER-ISOLATION-STAGE-1``,
which sends what leaves a bridge for another interface to ``-STAGE-2``, which
drops it if that interface is another network's bridge: two rules per network,
not one per pair.  The chains exist only while there is something to isolate
(two networks, or an internal one), so a daemon with only ``bridge`` writes
exactly Docker 1.4's rules.  The jump stays the first rule of FORWARD (the
firewall inserts below it), so no accept can pass traffic between networks.

The DNAT rules need no tag: the nat DOCKER chain is the daemon's, all of it,
and the 288 bytes a comment adds to each rule would double the size of the
table that every published port rewrites (legacy iptables replaces a whole
table per commit).  The default network's boot rules carry no tag either: they
are Docker's own and shared with anything that expects them.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import NamedTuple

from .network import Endpoint, Link, Network, NetworkSpec, PortMapping

NAT = "nat"
FILTER = "filter"
RAW = "raw"
#: The same tables of ip6tables: a rule's table says its family.
IP6 = "ip6 "
NAT6, FILTER6, RAW6 = IP6 + NAT, IP6 + FILTER, IP6 + RAW
DOCKER_CHAIN = "DOCKER"
OWNER_TAG = "dockernetd:"
LINK_TAG = OWNER_TAG + "link"
ISOLATION_TAG = OWNER_TAG + "isolation"
NETWORK_TAG = OWNER_TAG + "net:"
ISOLATION_1 = "DOCKER-ISOLATION-STAGE-1"
ISOLATION_2 = "DOCKER-ISOLATION-STAGE-2"
#: Chains of the filter table that are the daemon's, all of them (created when needed).
OWN_FILTER_CHAINS = (ISOLATION_1, ISOLATION_2)


class NftElement(NamedTuple):
    """An element of one of the sets or maps of the nftables table (``key : value``).

    A NamedTuple, as NftRule: the firewall counts thousands of them per change, and a
    tuple's hash and equality are the interpreter's (a dataclass's run Python code)."""

    set: str
    key: tuple[str, ...]
    value: tuple[str, ...] = ()

    def text(self) -> str:
        """The element as nft writes it: ``tcp . 8080 : 172.17.0.2 . 80``."""
        key = " . ".join(self.key)
        return f"{key} : {' . '.join(self.value)}" if self.value else key


class NftRule(NamedTuple):
    """A rule of one of the table's chains, in nft syntax (also its comment: its identity
    when the table is read back)."""

    chain: str
    text: str


NftItem = NftElement | NftRule


@dataclass(frozen=True)
class Rule:
    """One rule of the daemon's firewall: as iptables writes it (``table``, ``chain``,
    ``args``), and what stands for it in the nftables table (``nft``: elements of its
    sets and maps, or rules of its chains; nothing for what the table has built in)."""

    table: str  # nat, filter, raw; or ip6 nat, ip6 filter, ip6 raw
    chain: str
    args: tuple[str, ...]
    nft: tuple[NftItem, ...] = ()

    @property
    def family(self) -> int:
        return 6 if self.table.startswith(IP6) else 4

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


def _rule(table: str, chain: str, args: str, comment: str = "", nft: NftItem | None = None) -> Rule:
    """A rule from its save form; values never hold spaces (names and ids are validated).

    The owner tag goes where iptables-save prints it: after the matches, before -j.
    """
    words = tuple(args.split())
    if comment:
        jump = words.index("-j")
        words = (*words[:jump], "-m", "comment", "--comment", comment, *words[jump:])
    return Rule(table, chain, words, () if nft is None else (nft,))


def boot_plan(spec: NetworkSpec) -> BootPlan:
    """The default network's rules at boot: Docker 1.4's setupIPTables, and the same in
    ip6tables for a dual-stack network."""
    bridge, icc = spec.bridge, spec.icc
    present = []
    if spec.cluster_pool is not None:
        present.append(cluster_exemption_rule(spec, spec.cluster_pool))
    if spec.ip_masq:
        present.append(_masquerade(spec))
    accept, drop = _icc(bridge, accept=True), _icc(bridge, accept=False)
    forwarding = [accept if icc else drop, _outgoing(bridge), _established(bridge)]
    present += forwarding
    absent = [drop if icc else accept]
    if spec.gateway_v6 is not None:
        if spec.ip_masq:
            present.append(_masquerade_v6(spec))
        present += [*map(_ipv6_twin, forwarding), _published_v6(bridge)]
        absent.append(_ipv6_twin(absent[0]))
        (absent if icc else present).extend(_neighbour_discovery(bridge))
    return BootPlan(absent=tuple(absent), present=tuple(present), jumps=DOCKER_JUMPS)


def _ipv6_twin(rule: Rule) -> Rule:
    """The same rule in ip6tables, for a rule that names interfaces, not addresses.  Its
    nftables form is the IPv4 rule's: the table ``inet dockernetd`` holds both families."""
    return dataclasses.replace(rule, table=IP6 + rule.table, nft=())


def _neighbour_discovery(bridge: str, tag: str = "") -> list[Rule]:
    """With icc off, containers still find each other's link-layer addresses: IPv4's ARP
    passes no IP hook, but IPv6's neighbour solicitations and advertisements are ICMPv6,
    which the bridge hands to ip6tables (br_netfilter) and the icc DROP would eat; above
    it, these two accepts.  (nftables: a rule of the skeleton, for every bridge.)"""
    return [
        _rule(
            FILTER6,
            "FORWARD",
            f"-i {bridge} -o {bridge} -p ipv6-icmp -m icmp6 --icmpv6-type {kind} -j ACCEPT",
            tag,
        )
        for kind in (135, 136)  # neighbour solicitation, advertisement
    ]


def _masquerade(spec: NetworkSpec, tag: str = "") -> Rule:
    """What leaves the network for the world leaves with the host's address; in a
    cluster, what goes to another host's containers keeps its own."""
    subnet, bridge, pool = spec.subnet, spec.bridge, spec.cluster_pool
    if pool is None:
        return _rule(
            NAT,
            "POSTROUTING",
            f"-s {subnet} ! -o {bridge} -j MASQUERADE",
            tag,
            NftRule("postrouting_nat", f'ip saddr {subnet} oifname != "{bridge}" masquerade'),
        )
    return _rule(
        NAT,
        "POSTROUTING",
        f"-s {subnet} ! -d {pool} ! -o {bridge} -j MASQUERADE",
        tag,
        NftRule(
            "postrouting_nat",
            f'ip saddr {subnet} ip daddr != {pool} oifname != "{bridge}" masquerade',
        ),
    )


def _masquerade_v6(spec: NetworkSpec, tag: str = "") -> Rule:
    """A unique-local subnet is not routed beyond the host: it leaves with the host's
    address, as Docker 27 does (``ip_masq`` is one setting for both families)."""
    subnet, bridge = spec.subnet_v6, spec.bridge
    return _rule(
        NAT6,
        "POSTROUTING",
        f"-s {subnet} ! -o {bridge} -j MASQUERADE",
        tag,
        NftRule("postrouting_nat", f'ip6 saddr {subnet} oifname != "{bridge}" masquerade'),
    )


def cluster_exemption_rule(spec: NetworkSpec, pool: IPv4Network) -> Rule:
    """The other hosts' containers reach ours at their addresses: packets from the
    cluster's pool to this host's subnet pass the raw table before the direct-access
    guards (inserted at boot above them; the guards are appended)."""
    return _rule(
        RAW,
        "PREROUTING",
        f"-s {pool} -d {spec.subnet} -j ACCEPT",
        nft=NftRule("prerouting_raw", f"ip saddr {pool} ip daddr {spec.subnet} accept"),
    )


def _icc(bridge: str, *, accept: bool, tag: str = "") -> Rule:
    verdict = "ACCEPT" if accept else "DROP"
    return _rule(
        FILTER,
        "FORWARD",
        f"-i {bridge} -o {bridge} -j {verdict}",
        tag,
        NftRule("networks", f'iifname "{bridge}" oifname "{bridge}" {verdict.lower()}'),
    )


def _outgoing(bridge: str, tag: str = "") -> Rule:
    return _rule(
        FILTER,
        "FORWARD",
        f"-i {bridge} ! -o {bridge} -j ACCEPT",
        tag,
        NftRule("networks", f'iifname "{bridge}" oifname != "{bridge}" accept'),
    )


def _established(bridge: str, tag: str = "") -> Rule:
    return _rule(
        FILTER,
        "FORWARD",
        f"-o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        tag,
        NftRule("established", f'oifname "{bridge}" ct state established,related accept'),
    )


#: Local traffic to published ports goes through DOCKER; loopback is left to the proxy.
#: The same in ip6tables (Docker 27's), whether or not a network is dual-stack yet.
DOCKER_JUMPS = (
    _rule(NAT, "PREROUTING", f"-m addrtype --dst-type LOCAL -j {DOCKER_CHAIN}"),
    _rule(NAT, "OUTPUT", f"! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j {DOCKER_CHAIN}"),
    _rule(NAT6, "PREROUTING", f"-m addrtype --dst-type LOCAL -j {DOCKER_CHAIN}"),
    _rule(NAT6, "OUTPUT", f"! -d ::1/128 -m addrtype --dst-type LOCAL -j {DOCKER_CHAIN}"),
)

#: What Docker's RemoveExistingChain deleted before recreating DOCKER: today's jumps and
#: the older forms ("versions <= 0.1.6").
STALE_JUMPS = (
    *DOCKER_JUMPS,
    _rule(NAT, "OUTPUT", f"-m addrtype --dst-type LOCAL -j {DOCKER_CHAIN}"),
    _rule(NAT, "PREROUTING", f"-j {DOCKER_CHAIN}"),
    _rule(NAT, "OUTPUT", f"-j {DOCKER_CHAIN}"),
)


LOOPBACK = IPv4Network("127.0.0.0/8")


def direct_access_rule(bridge: str, endpoint: Endpoint) -> Rule:
    """Docker 28's guard (moby#41872): a container is reached from off its bridge only
    through a published port, never at its own address.  (Its IPv6 address is guarded
    with its network's subnet: :func:`subnet_guard_v6`.)"""
    rule = _rule(RAW, "PREROUTING", f"-d {endpoint.ip}/32 ! -i {bridge} -j DROP")
    ip = str(endpoint.ip)
    guarded = (NftElement("endpoint_ips", (ip,)), NftElement("endpoints", (ip, bridge)))
    return dataclasses.replace(rule, nft=guarded)


def subnet_guard_v6(spec: NetworkSpec) -> Rule:
    """The direct-access guard of a dual-stack network's IPv6 side, one rule for all its
    containers: every address of the subnet is the network's, so nothing for it comes
    in but on its bridge (IPv4's subnet may be routed to on purpose: a cluster, direct
    routing; its guards are per container).  A container's start commits no IPv6 rule."""
    subnet, bridge = spec.subnet_v6, spec.bridge
    return _rule(
        RAW6,
        "PREROUTING",
        f"-d {subnet} ! -i {bridge} -j DROP",
        nft=NftRule("prerouting_raw", f'ip6 daddr {subnet} iifname != "{bridge}" drop'),
    )


def loopback_guard_rule(mapping: PortMapping) -> Rule | None:
    """A port published on 127.0.0.0/8 is the host's own: a packet from another host
    addressed to it (crafted; moby#45610) is dropped before DNAT could forward it."""
    if mapping.host_ip not in LOOPBACK:
        return None
    proto, host_ip, port = mapping.proto, mapping.host_ip, mapping.host_port
    return _rule(
        RAW,
        "PREROUTING",
        f"-d {host_ip}/32 ! -i lo -p {proto} -m {proto} --dport {port} -j DROP",
        nft=NftElement("loopback_guard", (str(host_ip), proto, str(port))),
    )


LOCALNET_TAG = OWNER_TAG + "localnet"


def localnet_guard_rule(spec: NetworkSpec) -> Rule:
    """Nothing arriving on a bridge is for 127.0.0.0/8.  The kernel drops such packets as
    martians, unless the bridge has route_localnet (which a port published without the
    proxy needs, for the host's own 127.0.0.1 to reach it): then this rule does."""
    return _rule(
        RAW,
        "PREROUTING",
        f"-d 127.0.0.0/8 -i {spec.bridge} -j DROP",
        LOCALNET_TAG,
        NftElement("localnet_bridges", (spec.bridge,)),
    )


def loopback_path_rules(endpoint: Endpoint, mapping: PortMapping) -> list[Rule]:
    """For a port published without the proxy on 0.0.0.0 or 127.0.0.0/8: the host's own
    connections to 127.0.0.1 DNATed in nat OUTPUT (which DOCKER's jump leaves to the
    proxy), and masqueraded to the bridge address so the container's answer comes back.
    The CNI portmap plugin's form."""
    host_ip = mapping.host_ip
    if mapping.proxy or not (mapping.on_every_address or host_ip in LOOPBACK):
        return []
    proto, tag = mapping.proto, OWNER_TAG + endpoint.container_id
    host_port, ip, port = str(mapping.host_port), str(endpoint.ip), str(mapping.container_port)
    if mapping.on_every_address:
        local, dnat = "127.0.0.0/8", NftElement("loopback_any", (proto, host_port), (ip, port))
    else:
        local = f"{host_ip}/32"
        dnat = NftElement("loopback_at", (str(host_ip), proto, host_port), (ip, port))
    return [
        _rule(
            NAT,
            "OUTPUT",
            f"-d {local} -p {proto} -m {proto} --dport {host_port} "
            f"-j DNAT --to-destination {ip}:{port}",
            tag,
            dnat,
        ),
        _rule(
            NAT,
            "POSTROUTING",
            f"-s 127.0.0.0/8 -d {ip}/32 -p {proto} -m {proto} --dport {port} -j MASQUERADE",
            tag,
            NftElement("loopback_masq", (ip, proto, port)),
        ),
    ]


#: The tables of the rules of one published port and of one link, in mapping_rules' and
#: link_rules' order: every mapping and every link has rules of this one shape.
MAPPING_RULE_TABLES = (NAT, FILTER)
LINK_RULE_TABLES = (FILTER, FILTER)


def mapping_rules(bridge: str, endpoint: Endpoint, mapping: PortMapping) -> tuple[Rule, Rule]:
    """The DNAT rule in nat DOCKER and the (tagged) FORWARD accept rule of one published port."""
    host_ip, proto, port = mapping.host_ip, mapping.proto, mapping.container_port
    host_port, ip = str(mapping.host_port), str(endpoint.ip)
    if mapping.on_every_address:
        destination = ""
        # the map DNATs; the verdict map keeps the container's own bridge out (! -i bridge)
        nft: tuple[NftItem, ...] = (
            NftElement("skip_any", (bridge, proto, host_port), ("return",)),
            NftElement("dnat_any", (proto, host_port), (ip, str(port))),
        )
    else:
        destination = f"-d {host_ip}/32"
        nft = (
            NftElement("skip_at", (bridge, str(host_ip), proto, host_port), ("return",)),
            NftElement("dnat_at", (str(host_ip), proto, host_port), (ip, str(port))),
        )
    dnat = _rule(
        NAT,
        DOCKER_CHAIN,
        f"{destination} ! -i {bridge} -p {proto} -m {proto} --dport {host_port} "
        f"-j DNAT --to-destination {ip}:{port}",
    )
    forward = _rule(
        FILTER,
        "FORWARD",
        f"-d {ip}/32 ! -i {bridge} -o {bridge} -p {proto} -m {proto} --dport {port} -j ACCEPT",
        OWNER_TAG + endpoint.container_id,
        NftElement("published_to", (ip, proto, str(port))),
    )
    return dataclasses.replace(dnat, nft=nft), forward


def mapping_rules_v6(bridge: str, endpoint: Endpoint, mapping: PortMapping) -> list[Rule]:
    """A port published on the default address, on a dual-stack network: IPv6 clients
    DNATed to the container's IPv6 address (their own address kept), as Docker 27.  Its
    FORWARD accept is the network's (:func:`_published_v6`): one commit per port, not two."""
    if endpoint.ipv6 is None or not mapping.on_every_address:
        return []
    proto, host_port, port = mapping.proto, mapping.host_port, mapping.container_port
    ip = endpoint.ipv6
    dnat = _rule(
        NAT6,
        DOCKER_CHAIN,
        f"! -i {bridge} -p {proto} -m {proto} --dport {host_port} "
        f"-j DNAT --to-destination [{ip}]:{port}",
    )
    nft: tuple[NftItem, ...] = (  # the IPv4 rule's skip element is counted once more
        NftElement("skip_any", (bridge, proto, str(host_port)), ("return",)),
        NftElement("dnat6_any", (proto, str(host_port)), (str(ip), str(port))),
    )
    return [dataclasses.replace(dnat, nft=nft)]


def _published_v6(bridge: str, tag: str = "") -> Rule:
    """What the DOCKER chain DNATed into a dual-stack network passes FORWARD: one rule per
    network where IPv4 has one per published port.  Legacy ip6tables rewrites a whole
    table per commit and each costs a grace period of the kernel; a port's IPv6 side is
    then one commit (nat) instead of two, which keeps dual-stack setup within 1.3 times
    IPv4's.  Only packets DNATed to the bridge match: not even a routed packet for a
    published port, which Docker's per-port form would let through."""
    return _rule(
        FILTER6,
        "FORWARD",
        f"-o {bridge} -m conntrack --ctstate DNAT -j ACCEPT",
        tag,
        NftRule("established", f'meta nfproto ipv6 oifname "{bridge}" ct status dnat accept'),
    )


def link_rules(bridge: str, link: Link) -> list[Rule]:
    """Parent to child's port, and the child's answers back (Docker inserts both with -I);
    the same for their IPv6 addresses on a dual-stack network."""
    parent, child, proto, port = str(link.parent), str(link.child), link.proto, str(link.port)
    to_child = _rule(
        FILTER,
        "FORWARD",
        f"-s {parent}/32 -d {child}/32 -i {bridge} -o {bridge} -p {proto} -m {proto} "
        f"--dport {port} -j ACCEPT",
        LINK_TAG,
        NftElement("links", (bridge, parent, child, proto, port)),
    )
    to_parent = _rule(
        FILTER,
        "FORWARD",
        f"-s {child}/32 -d {parent}/32 -i {bridge} -o {bridge} -p {proto} -m {proto} "
        f"--sport {port} -j ACCEPT",
        LINK_TAG,
        NftElement("links_reply", (bridge, child, parent, proto, port)),
    )
    if link.parent_v6 is None or link.child_v6 is None:
        return [to_child, to_parent]
    parent6, child6 = str(link.parent_v6), str(link.child_v6)
    return [
        to_child,
        to_parent,
        _rule(
            FILTER6,
            "FORWARD",
            f"-s {parent6}/128 -d {child6}/128 -i {bridge} -o {bridge} -p {proto} -m {proto} "
            f"--dport {port} -j ACCEPT",
            LINK_TAG,
            NftElement("links6", (bridge, parent6, child6, proto, port)),
        ),
        _rule(
            FILTER6,
            "FORWARD",
            f"-s {child6}/128 -d {parent6}/128 -i {bridge} -o {bridge} -p {proto} -m {proto} "
            f"--sport {port} -j ACCEPT",
            LINK_TAG,
            NftElement("links6_reply", (bridge, child6, parent6, proto, port)),
        ),
    ]


def network_rules(spec: NetworkSpec) -> tuple[Rule, ...]:
    """The tagged rules of a network other than ``bridge`` (whose rules are its boot plan).

    As the boot plan's, in its order (each is inserted at the top): masquerade
    (not for an internal network), icc, and for a network with a route out the
    outgoing and established accepts.
    """
    if spec.is_default:
        return ()
    bridge, tag = spec.bridge, NETWORK_TAG + spec.name
    rules = []
    if spec.ip_masq and not spec.internal:
        rules.append(_masquerade(spec, tag))
    forwarding = [_icc(bridge, accept=spec.icc, tag=tag)]
    if not spec.internal:
        forwarding += [_outgoing(bridge, tag), _established(bridge, tag)]
    rules += forwarding
    if spec.gateway_v6 is not None:
        if spec.ip_masq and not spec.internal:
            rules.append(_masquerade_v6(spec, tag))
        rules += map(_ipv6_twin, forwarding)
        if not spec.internal:
            rules.append(_published_v6(bridge, tag))
        if not spec.icc:
            rules += _neighbour_discovery(bridge, tag)
    return tuple(rules)


def own_network_rules(spec: NetworkSpec, *, direct_access: bool) -> list[Rule]:
    """What a network of any kind owns apart from its endpoints' and the isolation: its
    tagged rules (none for ``bridge``), its loopback guard, and with ``direct_access``
    (guarded) on a dual-stack network its IPv6 subnet's guard."""
    guard = [subnet_guard_v6(spec)] if direct_access and spec.gateway_v6 is not None else []
    return [*network_rules(spec), localnet_guard_rule(spec), *guard]


ISOLATION_JUMP = _rule(FILTER, "FORWARD", f"-j {ISOLATION_1}", ISOLATION_TAG)
ISOLATION_JUMPS = (ISOLATION_JUMP, _ipv6_twin(ISOLATION_JUMP))


def isolation_rules(specs: Iterable[NetworkSpec]) -> list[Rule]:
    """Docker's two-stage isolation of ``specs``' bridges from each other, jump last.

    An internal network drops everything that enters or leaves its bridge
    through another interface.  Nothing at all while there is nothing to isolate.
    """
    specs = list(specs)
    if len(specs) < 2 and not any(spec.internal for spec in specs):
        return []
    rules = []
    for spec in specs:
        bridge = spec.bridge
        quoted = f'"{bridge}"'
        if spec.internal:
            rules.append(
                _rule(
                    FILTER,
                    ISOLATION_1,
                    f"-i {bridge} ! -o {bridge} -j DROP",
                    nft=NftRule("isolation1", f"iifname {quoted} oifname != {quoted} drop"),
                )
            )
            rules.append(
                _rule(
                    FILTER,
                    ISOLATION_1,
                    f"! -i {bridge} -o {bridge} -j DROP",
                    nft=NftRule("isolation1", f"iifname != {quoted} oifname {quoted} drop"),
                )
            )
        else:
            rules.append(
                _rule(
                    FILTER,
                    ISOLATION_1,
                    f"-i {bridge} ! -o {bridge} -j {ISOLATION_2}",
                    nft=NftRule(
                        "isolation1", f"iifname {quoted} oifname != {quoted} jump isolation2"
                    ),
                )
            )
            rules.append(
                _rule(
                    FILTER,
                    ISOLATION_2,
                    f"-o {bridge} -j DROP",
                    nft=NftRule("isolation2", f"oifname {quoted} drop"),
                )
            )
    rules.append(ISOLATION_JUMP)
    if any(spec.gateway_v6 is not None for spec in specs):
        rules += [_ipv6_twin(rule) for rule in rules]  # interfaces only: the same in both
    return rules


def publish_rules(bridge: str, endpoint: Endpoint, mapping: PortMapping) -> list[Rule]:
    """Every rule of one published port: its DNAT and FORWARD rules, the loopback guard
    when it is published on 127.0.0.0/8, without the proxy the host's path to it, and on
    the default address of a dual-stack endpoint the same DNAT and FORWARD for IPv6.
    None for a port on an IPv6 address: the proxy alone publishes it."""
    if not mapping.in_kernel:
        return []
    guard = loopback_guard_rule(mapping)
    return [
        *mapping_rules(bridge, endpoint, mapping),
        *([guard] if guard else []),
        *loopback_path_rules(endpoint, mapping),
        *mapping_rules_v6(bridge, endpoint, mapping),
    ]


def owned_rules(
    networks: Iterable[Network], links: Iterable[Link], *, direct_access: bool
) -> list[Rule]:
    """Every rule the daemon owns beyond the default network's boot plan: what the firewall
    should hold in the places that are all ours (restore reconciles to it, verify checks
    it).  ``direct_access``: each endpoint has its direct-access guard."""
    networks = list(networks)
    bridges = {network.name: network.spec.bridge for network in networks}
    return [
        *(
            rule
            for network in networks
            for rule in own_network_rules(network.spec, direct_access=direct_access)
        ),
        *(
            direct_access_rule(network.spec.bridge, endpoint)
            for network in networks
            if direct_access
            for endpoint in network.endpoints.values()
        ),
        *(
            rule
            for network in networks
            for endpoint in network.endpoints.values()
            for mapping in endpoint.ports
            for rule in publish_rules(network.spec.bridge, endpoint, mapping)
        ),
        *(rule for link in links for rule in link_rules(bridges[link.network], link)),
        *isolation_rules(network.spec for network in networks),
    ]


def owned_rule_counts(
    networks: Iterable[Network], links: Iterable[Link], *, direct_access: bool
) -> Counter[str]:
    """How many rules :func:`owned_rules` holds in each table, from the shapes of the
    mapping rules rather than built (5,000 mappings' rules take ~35 ms to build)."""
    networks = list(networks)
    endpoints = [e for network in networks for e in network.endpoints.values()]
    mapped = [(e, m) for e in endpoints for m in e.ports if m.in_kernel]
    mappings = [m for _, m in mapped]
    guarded = sum(m.host_ip in LOOPBACK for m in mappings)
    local_paths = sum(
        not m.proxy and (m.on_every_address or m.host_ip in LOOPBACK) for m in mappings
    )
    # a port on the default address of a dual-stack endpoint: DNAT and accept for IPv6 too
    both_families = sum(e.ipv6 is not None and m.on_every_address for e, m in mapped)
    fixed = [
        *(
            rule
            for network in networks
            for rule in own_network_rules(network.spec, direct_access=direct_access)
        ),
        *isolation_rules(network.spec for network in networks),
    ]
    raw = guarded + (len(endpoints) if direct_access else 0)
    links = list(links)
    links_v6 = sum(link.parent_v6 is not None and link.child_v6 is not None for link in links)
    return (
        Counter(rule.table for rule in fixed)
        + Counter({RAW: raw, NAT: 2 * local_paths})
        + Counter({NAT6: both_families, FILTER6: 2 * links_v6})
        + Counter({t: n * len(mappings) for t, n in Counter(MAPPING_RULE_TABLES).items()})
        + Counter({t: n * len(links) for t, n in Counter(LINK_RULE_TABLES).items()})
    )
