"""The nftables backend (``--firewall-backend nftables``): one table, ``inet dockernetd``.

The same rules as the iptables backend (rules.py says, for each, what stands for it
here), laid out so that what changes per container is an *element*: a published
port is two elements of maps and one of a set, a link two of sets, an endpoint's
direct-access guard two; adding or removing one is one small transaction whatever
the size of the table.  The per-network rules are rules of the table's chains
(a network is a handful of them, found again by their handles).  The chains and
the rules that look the elements up are fixed (SKELETON), in this order:

* ``prerouting_raw`` (raw): the direct-access guard (a packet for a container's
  address that does not arrive on its bridge), the loopback guards.
* ``prerouting_nat`` and ``output_nat``: locally addressed packets (``fib daddr
  type local``, as ``--dst-type LOCAL``) go through ``published``: the container's
  own bridge is skipped (a verdict map), then the DNAT maps, address-specific
  first.  ``output_nat`` also DNATs 127.0.0.0/8 for ports published without the
  proxy, which ``postrouting_nat`` masquerades with each network's subnet.
* ``forward``: the isolation chains, the links, the networks' established and
  own rules (icc, outgoing), then the published ports: the order of Docker's
  FORWARD chain.

IPv6 shares the chains: the interface rules hold for both families, and the IPv6 ones
look up their own maps (``dnat6_any``, ``links6``); a dual-stack network adds its subnet's
guard and the accept of what was DNATed to its bridge (rules.py says why per network).

Every rule carries its own text as a comment (quotes as apostrophes): reading the
table back gives each rule's identity, so a verify compares exactly.  A repair
rebuilds the whole table in one transaction, so its order is always the one above.
A change by anyone shows as a new ruleset generation (NFT_MSG_GETGEN); the daemon asks
for it when nfnetlink announces a committed change (open_ruleset_events), so another
program's flush is noticed at once, and nothing is asked while nothing changes.

Runs on the kernel thread, as the iptables firewall does.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..metrics import CommitTimes
from ..rules import BootPlan, NftElement, NftItem, NftRule, Rule
from .firewall import Firewall, FirewallError
from .libnftables import Nft, NftError

log = logging.getLogger("dockernetd.nftables")

TABLE = "inet dockernetd"
#: Every set and map: its key's types, and its value's (None for a set).
SETS: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {
    "endpoint_ips": (("ipv4_addr",), None),
    "endpoints": (("ipv4_addr", "ifname"), None),
    "localnet_bridges": (("ifname",), None),
    "loopback_guard": (("ipv4_addr", "inet_proto", "inet_service"), None),
    "skip_any": (("ifname", "inet_proto", "inet_service"), ("verdict",)),
    "skip_at": (("ifname", "ipv4_addr", "inet_proto", "inet_service"), ("verdict",)),
    "dnat_any": (("inet_proto", "inet_service"), ("ipv4_addr", "inet_service")),
    "dnat_at": (("ipv4_addr", "inet_proto", "inet_service"), ("ipv4_addr", "inet_service")),
    "loopback_any": (("inet_proto", "inet_service"), ("ipv4_addr", "inet_service")),
    "loopback_at": (("ipv4_addr", "inet_proto", "inet_service"), ("ipv4_addr", "inet_service")),
    "loopback_masq": (("ipv4_addr", "inet_proto", "inet_service"), None),
    "published_to": (("ipv4_addr", "inet_proto", "inet_service"), None),
    # at most five types: nftables packs a concatenation's type in 32 bits, 6 per part
    # (the link's oifname is its bridge anyway: both ends are addresses of one network)
    "links": (("ifname", "ipv4_addr", "ipv4_addr", "inet_proto", "inet_service"), None),
    "links_reply": (("ifname", "ipv4_addr", "ipv4_addr", "inet_proto", "inet_service"), None),
    # IPv6: ports published on the default address of dual-stack endpoints, links
    "dnat6_any": (("inet_proto", "inet_service"), ("ipv6_addr", "inet_service")),
    "links6": (("ifname", "ipv6_addr", "ipv6_addr", "inet_proto", "inet_service"), None),
    "links6_reply": (("ifname", "ipv6_addr", "ipv6_addr", "inet_proto", "inet_service"), None),
}
BASE_CHAINS = {
    "prerouting_raw": "type filter hook prerouting priority raw;",
    "prerouting_nat": "type nat hook prerouting priority dstnat;",
    "output_nat": "type nat hook output priority -100;",
    "postrouting_nat": "type nat hook postrouting priority srcnat;",
    "forward": "type filter hook forward priority filter;",
}
CHAINS = ("published", "isolation1", "isolation2", "established", "networks")
_PORT = "ip daddr . ip protocol . th dport"
#: The fixed rules, in their order (a chain's rules are evaluated in order).
SKELETON = tuple(
    NftRule(chain, text)
    for chain, text in (
        ("prerouting_raw", "ip daddr @endpoint_ips ip daddr . iifname != @endpoints drop"),
        ("prerouting_raw", "ip daddr 127.0.0.0/8 iifname @localnet_bridges drop"),
        ("prerouting_raw", f'iifname != "lo" {_PORT} @loopback_guard drop'),
        ("prerouting_nat", "fib daddr type local jump published"),
        ("output_nat", "ip daddr != 127.0.0.0/8 fib daddr type local jump published"),
        ("output_nat", "ip6 daddr != ::1 fib daddr type local jump published"),
        ("output_nat", f"ip daddr 127.0.0.0/8 dnat ip to {_PORT} map @loopback_at"),
        ("output_nat", "ip daddr 127.0.0.0/8 dnat ip to ip protocol . th dport map @loopback_any"),
        ("postrouting_nat", f"ip saddr 127.0.0.0/8 {_PORT} @loopback_masq masquerade"),
        ("published", f"iifname . {_PORT} vmap @skip_at"),
        ("published", f"dnat ip to {_PORT} map @dnat_at"),
        ("published", "iifname . ip protocol . th dport vmap @skip_any"),
        ("published", "dnat ip to ip protocol . th dport map @dnat_any"),
        ("published", "meta nfproto ipv6 iifname . meta l4proto . th dport vmap @skip_any"),
        ("published", "dnat ip6 to meta l4proto . th dport map @dnat6_any"),
        ("forward", "jump isolation1"),
        (
            "forward",
            "iifname . ip saddr . ip daddr . ip protocol . th dport @links accept",
        ),
        (
            "forward",
            "iifname . ip saddr . ip daddr . ip protocol . th sport @links_reply accept",
        ),
        (
            "forward",
            "iifname . ip6 saddr . ip6 daddr . meta l4proto . th dport @links6 accept",
        ),
        (
            "forward",
            "iifname . ip6 saddr . ip6 daddr . meta l4proto . th sport @links6_reply accept",
        ),
        ("forward", "jump established"),
        # bridged neighbour discovery passes icc's drop (rules.py, _neighbour_discovery)
        ("forward", "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept"),
        ("forward", "jump networks"),
        ("forward", f"{_PORT} @published_to accept"),
    )
)


class NftFirewallError(FirewallError):
    backend = "nftables"


# nfnetlink: the ruleset generation (which every committed change increments) and the rules
NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFPROTO_INET = 1
NFT_MSG_GETTABLE = 1
NFT_MSG_GETRULE = 7
NFT_MSG_GETGEN = 16
NFTA_GEN_ID = 1
NFTA_TABLE_NAME = NFTA_RULE_TABLE = 1  # a table's name, or the table a dump of rules names
NFTA_RULE_CHAIN, NFTA_RULE_HANDLE, NFTA_RULE_USERDATA = 2, 3, 7
NFTNL_UDATA_RULE_COMMENT = 0
NLM_F_REQUEST, NLM_F_DUMP = 1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NFNLGRP_NFTABLES = 7  # the multicast group of every committed nftables change


def describe(item: NftItem) -> str:
    """An item as ``nft list`` would show where it is."""
    if isinstance(item, NftRule):
        return f"{TABLE} {item.chain}: {item.text}"
    return f"{TABLE} {item.set}: {{ {_element_text(item)} }}"


def _element_text(element: NftElement) -> str:
    """``key : value`` as nft writes it."""
    key_format, value_format = _FORMATS[element.set]
    key = key_format.format(*element.key)
    return f"{key} : {value_format.format(*element.value)}" if value_format else key


def _key_text(element: NftElement) -> str:
    return _FORMATS[element.set][0].format(*element.key)


def _format(types: tuple[str, ...]) -> str:
    """``"{}" . {}`` for (ifname, ipv4_addr): interface names are quoted."""
    return " . ".join('"{}"' if kind == "ifname" else "{}" for kind in types)


#: Each set's key and value as format strings: a release writes thousands of elements,
#: and formatting one string costs a fifth of joining its quoted parts.
_FORMATS = {name: (_format(key), _format(value or ())) for name, (key, value) in SETS.items()}


def _comment(rule: NftRule) -> str:
    return rule.text.replace('"', "'")


def skeleton_commands(boot: Iterable[Rule] = ()) -> list[str]:
    """The table, its sets, maps and chains, the rules of ``boot`` and the fixed rules.

    The boot rules go first in their chains, as iptables inserts them at the top: the
    cluster's exemption from the direct-access guard must come before the guard."""
    lines = [f"add table {TABLE}"]
    for name, (key, value) in SETS.items():
        kind = "map" if value else "set"
        types = " . ".join(key) + (f" : {' . '.join(value)}" if value else "")
        lines.append(f"add {kind} {TABLE} {name} {{ type {types}; }}")
    lines += [f"add chain {TABLE} {name} {{ {hook} }}" for name, hook in BASE_CHAINS.items()]
    lines += [f"add chain {TABLE} {name}" for name in CHAINS]
    lines += [_add_rule(item) for rule in boot for item in _rules_of(rule)]
    lines += [_add_rule(rule) for rule in SKELETON]
    return lines


def _add_rule(rule: NftRule) -> str:
    return f'add rule {TABLE} {rule.chain} {rule.text} comment "{_comment(rule)}"'


class NftFirewall:
    """The table ``inet dockernetd``, as the iptables Firewall's interface asks of it."""

    def __init__(self, commit_times: CommitTimes | None = None, *, ipv6: bool = True) -> None:
        self._ipv6 = ipv6  # without it, the IPv6 rules' items are left out (--ip6tables=false)
        try:
            self._nft = Nft()
        except NftError as exc:
            raise NftFirewallError(str(exc)) from None
        self._commit_times = commit_times
        self._handles: dict[NftRule, list[int]] = {}  # of the rules of networks, by rule
        self._uses: Counter[NftElement] = Counter()  # how many rules want each element
        self._generation = 0  # of the ruleset after our last change
        self._boot: BootPlan | None = None  # the default network's rules, from setup
        self._netlink = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)

    def close(self) -> None:
        self._nft.close()
        self._netlink.close()

    # -- the interface of kernel.firewall.Firewall ----------------------------------------

    def setup(self, plan: BootPlan) -> None:
        """The table with the default network's rules, if it is not there.  If it is, it is
        left as it is (a restarted daemon keeps forwarding): reconcile, which follows,
        compares all of it with the boot rules included, in one read (any read of the
        table costs the whole table: ~0.3 s at 30,000 elements)."""
        self._boot = plan = BootPlan(plan.absent, tuple(self._kept(plan.present)), plan.jumps)
        if table_exists(self._netlink):
            return
        self._run("\n".join(skeleton_commands(plan.present)), echo=True)

    def reconcile(self, desired: Iterable[Rule]) -> tuple[list[Rule], list[str]]:
        """Make the table hold exactly the skeleton, the boot rules of the last setup and
        ``desired``: rebuilt in one transaction (packets see the old table or the new, and
        established connections keep their conntrack state), without reading it first,
        which at 30,000 elements costs four times the rebuild: so nothing is reported as
        added or removed (verify compares exactly; it reads)."""
        boot = self._boot.present if self._boot else ()
        desired = self._kept(desired)
        self._rebuild(boot, desired)
        self._uses = Counter(
            item for rule in (*boot, *desired) for item in rule.nft if isinstance(item, NftElement)
        )
        return [], []

    def drift(self, plan: BootPlan, desired: Iterable[Rule]) -> tuple[list[Rule], list[str]]:
        """What setup and reconcile would change, changing nothing."""
        return self._compare(self._kept([*plan.present, *desired]))

    def apply(self, insert: Sequence[Rule] = (), delete: Sequence[Rule] = ()) -> None:
        """One transaction: the elements and rules of ``delete`` out, ``insert``'s in.

        An element is counted: two mappings of one container port want the same
        ``published_to`` element (iptables holds that rule twice), which leaves the set
        with the last of them.  The elements of one set go in one command (libnftables
        parses a command per line: 1,000 lines of one element cost several times one
        line of 1,000)."""
        insert, delete = self._kept(insert), self._kept(delete)
        lines: list[str] = []
        taken: Counter[NftRule] = Counter()
        delta: Counter[NftElement] = Counter()
        gone: dict[NftElement, None] = {}  # ordered sets
        added: dict[NftElement, None] = {}
        new_rules = []
        for rule in delete:
            for item in rule.nft:
                if isinstance(item, NftElement):
                    held = self._uses[item] + delta[item]
                    if held <= 0:
                        raise NftFirewallError(f"no such element: {describe(item)}")
                    delta[item] -= 1
                    if held == 1:
                        gone[item] = None
                    continue
                handles = self._handles.get(item, [])
                if taken[item] >= len(handles):
                    raise NftFirewallError(f"no such rule: {describe(item)}")
                lines.append(f"delete rule {TABLE} {item.chain} handle {handles[taken[item]]}")
                taken[item] += 1
        for rule in insert:
            for item in rule.nft:
                if isinstance(item, NftRule):
                    new_rules.append(_add_rule(item))
                    continue
                held = self._uses[item] + delta[item]
                delta[item] += 1
                if held == 0:
                    if item in gone:
                        del gone[item]  # out and in again: it stays
                    else:
                        added[item] = None
        lines += _element_commands("delete", gone, _key_text)
        lines += _element_commands("add", added, _element_text)
        lines += new_rules
        if lines:
            self._run("\n".join(lines), echo=bool(new_rules))
        for item, count in taken.items():
            del self._handles[item][:count]
        for element, change in delta.items():
            self._uses[element] += change
            if self._uses[element] <= 0:
                del self._uses[element]

    def _kept(self, rules: Iterable[Rule]) -> list[Rule]:
        """The rules whose items this table holds: without ``ipv6``, the IPv4 ones."""
        return [rule for rule in rules if self._ipv6 or rule.family == 4]

    def changed_by_others(self) -> bool:
        """Whether the ruleset changed since the daemon's last change (anyone's table)."""
        generation = self._read_generation()
        changed = generation != self._generation
        self._generation = generation
        return changed

    def forget_other_backend(self, plan: BootPlan) -> list[str]:
        """What the iptables backend left, if it ran before in this namespace: its rules
        and chains, deleted.  Legacy iptables is not touched where it never ran (its
        tables would be made by looking)."""
        if not _legacy_tables("ip"):
            return []
        legacy = Firewall(self._commit_times, ipv6=_legacy_tables("ip6"))
        try:
            return legacy.teardown(plan)
        finally:
            legacy.close()

    # -- reading the table ----------------------------------------------------------------

    def _read(self) -> tuple[Counter[NftRule], dict[str, set[NftElement]]] | None:
        """The rules of every chain and the elements of every set and map; None if there
        is no table.  One ``list table``: libnftables fetches
        the whole table for any list command (a ``list chain`` costs as much), and a
        batch of two fails in 1.0.6."""
        try:
            listed = self._nft.run(f"list table {TABLE}")
        except NftError:
            return None
        rules: Counter[NftRule] = Counter()
        elements: dict[str, set[NftElement]] = {name: set() for name in SETS}
        for entry in listed:
            kind, body = next(iter(entry.items()))
            if kind == "rule":
                rules[_rule_of(body)] += 1
            elif kind in ("set", "map") and body["name"] in elements:
                found = body.get("elem", [])
                elements[body["name"]] = {element_of(body["name"], raw) for raw in found}
        return rules, elements

    def _compare(self, desired: list[Rule]) -> tuple[list[Rule], list[str]]:
        """The desired rules some item of which is missing, and what is there that no
        desired rule or the skeleton accounts for."""
        current = self._read()
        skeleton = [Rule("nft", rule.chain, (), (rule,)) for rule in SKELETON]
        if current is None:
            return [*skeleton, *desired], []
        rules, elements = current
        wanted_rules: Counter[NftRule] = Counter()
        wanted_elements: dict[str, set[NftElement]] = {name: set() for name in SETS}
        missing: list[Rule] = []
        for rule in [*skeleton, *desired]:
            absent = False
            for item in rule.nft:
                if isinstance(item, NftRule):
                    wanted_rules[item] += 1
                    absent |= rules[item] < wanted_rules[item]
                else:
                    wanted_elements[item.set].add(item)
                    absent |= item not in elements[item.set]
            if absent:
                missing.append(rule)
        extra = [describe(r) for r in (rules - wanted_rules).elements()]
        extra += [
            describe(e)
            for name in SETS
            for e in sorted(elements[name] - wanted_elements[name], key=str)
        ]
        if not missing and _out_of_order(rules):
            missing = skeleton  # every rule is there, not in the skeleton's order
        return missing, extra

    def _rebuild(self, boot: Iterable[Rule], desired: list[Rule]) -> None:
        lines = [f"add table {TABLE}", f"delete table {TABLE}", *skeleton_commands(boot)]
        elements: dict[NftElement, None] = {}  # an ordered set: one element per mapping
        for rule in desired:
            for item in rule.nft:
                if isinstance(item, NftElement):
                    elements[item] = None
                else:
                    lines.append(_add_rule(item))
        lines += _element_commands("add", elements, _element_text)
        self._run("\n".join(lines))
        self._read_handles()

    # -- running ----------------------------------------------------------------------------

    def _run(self, commands: str, *, echo: bool = False) -> None:
        started = time.perf_counter()
        try:
            answer = self._nft.run(commands, echo=echo)
        except NftError as exc:
            raise NftFirewallError(str(exc).splitlines()[0]) from None
        if self._commit_times is not None:
            self._commit_times.observe([TABLE], time.perf_counter() - started)
        for entry in answer:  # with echo: the rules added, with their handles
            body = entry.get("add", {}).get("rule")
            if body is not None:
                self._handles.setdefault(_rule_of(body), []).append(body["handle"])
        self._generation = self._read_generation()

    def _read_generation(self) -> int:
        [attributes] = self._nfnetlink(NFT_MSG_GETGEN, socket.AF_UNSPEC, b"", dump=False)
        return int(struct.unpack("!I", attributes[NFTA_GEN_ID])[0])

    def _read_handles(self) -> None:
        """The handle of every rule of the table, by its comment: a netlink dump of the
        rules alone (libnftables' list would fetch every element too: 0.35 s at 30,000)."""
        handles: dict[NftRule, list[int]] = {}
        for attributes in self._nfnetlink(NFT_MSG_GETRULE, NFPROTO_INET, _TABLE_NAME, dump=True):
            chain = attributes[NFTA_RULE_CHAIN].rstrip(b"\0").decode()
            comment = _comment_of(attributes.get(NFTA_RULE_USERDATA, b""))
            rule = NftRule(chain, comment.replace("'", '"'))
            handles.setdefault(rule, []).append(
                struct.unpack("!Q", attributes[NFTA_RULE_HANDLE])[0]
            )
        self._handles = handles

    def _nfnetlink(
        self, message: int, family: int, payload: bytes, *, dump: bool
    ) -> list[dict[int, bytes]]:
        try:
            return nfnetlink(self._netlink, message, family, payload, dump=dump)
        except OSError as exc:
            raise NftFirewallError(f"nfnetlink: {exc.strerror}") from None


def _legacy_tables(family: str) -> bool:
    """Whether legacy iptables (``ip``) or ip6tables (``ip6``) has tables here."""
    try:
        with open(f"/proc/net/{family}_tables_names", encoding="ascii") as f:
            return bool(f.read().split())
    except OSError:
        return False


def _element_commands(
    verb: str, elements: dict[NftElement, None], text: Callable[[NftElement], str]
) -> list[str]:
    """One command per set for ``elements``: ``add element inet dockernetd S { a, b }``."""
    by_set: dict[str, list[str]] = {}
    for element in elements:
        by_set.setdefault(element.set, []).append(text(element))
    return [f"{verb} element {TABLE} {name} {{ {', '.join(t)} }}" for name, t in by_set.items()]


def nfnetlink(
    sock: socket.socket, message: int, family: int, payload: bytes, *, dump: bool
) -> list[dict[int, bytes]]:
    """One request of nfnetlink's nftables subsystem on ``sock``; the attributes of each
    answer.  OSError with the kernel's errno if it refuses."""
    flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0)
    body = struct.pack("=BBH", family, 0, 0) + payload
    header = struct.pack(
        "=IHHII", 16 + len(body), (NFNL_SUBSYS_NFTABLES << 8) | message, flags, 1, 0
    )
    sock.send(header + body)
    answers: list[dict[int, bytes]] = []
    while True:
        data = sock.recv(1 << 20)
        offset = 0
        while offset + 16 <= len(data):
            length, kind, _, _, _ = struct.unpack_from("=IHHII", data, offset)
            if kind == NLMSG_DONE:
                return answers
            if kind == NLMSG_ERROR:
                error = -struct.unpack_from("=i", data, offset + 16)[0]
                if error:
                    raise OSError(error, os.strerror(error))
                return answers
            answers.append(_attributes(data[offset + 20 : offset + length]))
            offset += (length + 3) & ~3
        if not dump:
            return answers


def open_ruleset_events() -> socket.socket:
    """A non-blocking netlink socket that becomes readable whenever anyone commits a change
    to any nftables table of this namespace (nfnetlink's NFNLGRP_NFTABLES group).  Its
    messages are only drained (drain_events): the ruleset generation says whose it was."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        sock.bind((0, 1 << (NFNLGRP_NFTABLES - 1)))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def drain_events(sock: socket.socket) -> None:
    """Read what is queued.  An overrun (ENOBUFS: more changes than the buffer held) says
    no more than the messages would have: something changed."""
    while True:
        try:
            sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise


def table_exists(sock: socket.socket | None = None) -> bool:
    """Whether ``inet dockernetd`` is there: one netlink request (loading libnftables to
    ask would cost ~40 ms of every start of the iptables backend)."""
    own = sock is None
    sock = sock or socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        nfnetlink(sock, NFT_MSG_GETTABLE, NFPROTO_INET, _TABLE_NAME, dump=False)
    except FileNotFoundError:
        return False
    finally:
        if own:
            sock.close()
    return True


def _attribute(kind: int, value: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(value), kind) + value + bytes(-len(value) % 4)


_TABLE_NAME = _attribute(NFTA_TABLE_NAME, b"dockernetd\0")


def _attributes(data: bytes) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    offset = 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        found[kind & 0x3FFF] = data[offset + 4 : offset + length]  # without NLA_F_NESTED
        offset += (length + 3) & ~3
    return found


def _comment_of(userdata: bytes) -> str:
    """The comment in a rule's userdata (libnftnl's TLVs: type, length, value)."""
    offset = 0
    while offset + 2 <= len(userdata):
        kind, length = userdata[offset], userdata[offset + 1]
        if kind == NFTNL_UDATA_RULE_COMMENT:
            return userdata[offset + 2 : offset + 2 + length].rstrip(b"\0").decode()
        offset += 2 + length
    return ""


def _rules_of(rule: Rule) -> list[NftRule]:
    return [item for item in rule.nft if isinstance(item, NftRule)]


def element_of(name: str, raw: Any) -> NftElement:
    """An element as libnftables-json lists it (atoms, concatenations, map entries)."""
    _, value_types = SETS[name]
    if value_types is None:
        return NftElement(name, atoms(raw))
    key, value = raw
    return NftElement(name, atoms(key), atoms(value))


def atoms(raw: Any) -> tuple[str, ...]:
    """An element, or a part of one, as libnftables-json lists it, as strings."""
    if isinstance(raw, dict) and "concat" in raw:
        return tuple(a for part in raw["concat"] for a in atoms(part))
    if isinstance(raw, dict) and "elem" in raw:
        return atoms(raw["elem"]["val"])
    if isinstance(raw, dict):  # a verdict: {"return": null}
        return (next(iter(raw)),)
    return (str(raw),)


def _rule_of(body: dict[str, Any]) -> NftRule:
    """A listed rule's identity: its chain and its comment (ours carry their text)."""
    return NftRule(body["chain"], str(body.get("comment", "")).replace("'", '"'))


def _out_of_order(rules: Counter[NftRule]) -> bool:
    """Whether the skeleton's rules of some chain are not in the skeleton's order
    (``rules`` in the table's order: a Counter keeps it)."""
    fixed = set(SKELETON)
    found = [rule for rule in rules if rule in fixed]
    return any(
        [r for r in found if r.chain == chain] != [r for r in SKELETON if r.chain == chain]
        for chain in {rule.chain for rule in SKELETON}
    )
