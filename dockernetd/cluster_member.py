"""This host in the cluster: its subnet leased and kept, the other hosts' routes followed.

At start (before init_networkdriver: the bridge's subnet is the lease) ``acquire``
asks etcd until it holds a subnet, retrying with backoff while etcd cannot be
reached; the daemon is not READY meanwhile and says why in STATUS=.  Then ``run``
keeps two things going for the daemon's life:

* the lease's keepalive, every heartbeat.  If etcd cannot be reached the daemon keeps
  serving with the subnet it has (nothing is torn down) and says it is degraded;
  if the lease expired meanwhile, the same subnet is leased again.
* the other hosts: the prefix read once, then watched; each change re-plans the routes
  (one per other host's subnet, via its advertise address).  If etcd goes away the
  routes stay as they are and the read is retried; what changed meanwhile is found by
  the next read.

See cluster.py for the store's layout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import trio

from .cluster import (
    ClusterSettings,
    HostLease,
    candidates,
    lease_of,
    route_changes,
    routes_wanted,
)
from .errors import StartupError
from .etcd import EtcdClient, EtcdUnavailable, KeyValue
from .kernel.routes import change_cluster_routes, cluster_routes
from .kernel.worker import KernelWorker

log = logging.getLogger("dockernetd.cluster")

FIRST_BACKOFF = 0.1
MAX_BACKOFF = 5.0


class ClusterMember:
    def __init__(self, settings: ClusterSettings, kernel: KernelWorker) -> None:
        self.settings = settings
        self._kernel = kernel
        self._etcd = EtcdClient(settings.urls())
        self.lease: HostLease | None = None
        self.hosts: dict[str, HostLease] = {}  # every host's lease, ours too, by key
        self._routes: dict[IPv4Network, IPv4Address] = {}  # as programmed
        self.route_failures: dict[IPv4Network, str] = {}
        self._problems: dict[str, str] = {}  # what cannot be done now ("lease", "watch")

    # -- what status, metrics and dockernetctl show ------------------------------------

    @property
    def degraded(self) -> bool:
        return bool(self._problems)

    @property
    def route_count(self) -> int:
        return len(self._routes)

    def public(self) -> dict[str, Any]:
        """``status``'s ``cluster``: this host's lease and whether the store is reachable."""
        lease = self.lease
        return {
            "store": self._etcd.url,
            "advertise": str(self.settings.advertise),
            "network": str(self.settings.pool),
            "subnet": str(lease.subnet) if lease else None,
            "lease_age_s": lease.public(time.time())["age_s"] if lease else None,
            "state": "degraded" if self._problems else "ok",
            "problems": sorted(self._problems.values()),
            "hosts": len(self.hosts),
            "routes": self.route_count,
        }

    def host_list(self) -> list[dict[str, Any]]:
        """``cluster``: every host with its subnet, lease age and whether we route to it."""
        now = time.time()
        rows = []
        for lease in sorted(self.hosts.values(), key=lambda lease: lease.subnet):
            row = lease.public(now)
            row["self"] = lease.advertise == self.settings.advertise
            row["routed"] = self._routes.get(lease.subnet) == lease.advertise
            if lease.subnet in self.route_failures:
                row["route_error"] = self.route_failures[lease.subnet]
            rows.append(row)
        return rows

    def bridge_address(self) -> str:
        """The default bridge's address: the first of the leased subnet (as --bip)."""
        assert self.lease is not None, "acquire first"
        subnet = self.lease.subnet
        return f"{subnet.network_address + 1}/{subnet.prefixlen}"

    # -- start ------------------------------------------------------------------------

    async def acquire(self, waiting: Callable[[str], None]) -> HostLease:
        """This host's subnet: the one it holds if its lease lives, else a free one.
        Retries while etcd cannot be reached (``waiting`` is told why); a full pool
        is a StartupError."""
        backoff = FIRST_BACKOFF
        while True:
            try:
                self.lease = await self._acquire_once()
            except EtcdUnavailable as exc:
                waiting(f"waiting for the cluster store: {exc}")
                log.warning("cluster: %s; retrying in %.1f s", exc, backoff)
                await trio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            log.info(
                "cluster: holding %s (lease %x, ttl %d s)",
                self.lease.subnet,
                self.lease.lease_id,
                self.settings.ttl,
            )
            return self.lease

    async def _acquire_once(self) -> HostLease:
        kvs, _ = await self._etcd.read_prefix(self.settings.prefix)
        leases = self._parse(kvs)
        mine = [lease for lease in leases.values() if lease.advertise == self.settings.advertise]
        for lease in mine:  # ours, from before a restart, while its lease lives
            if await self._etcd.keep_alive(lease.lease_id) > 0:
                return lease
        free = candidates(self.settings, [lease.subnet for lease in leases.values()])
        if free:
            lease_id = await self._etcd.grant(self.settings.ttl)
            for subnet in free:  # one taken meanwhile by a host racing us: the next
                lease = HostLease(subnet, self.settings.advertise, time.time(), lease_id)
                if await self._etcd.create(self.settings.key(subnet), lease.value(), lease_id):
                    return lease
        raise StartupError(
            f"cluster network {self.settings.pool} is full: every /{self.settings.subnet_size} "
            f"of it is leased ({len(leases)} hosts)"
        )

    def _parse(self, kvs: list[KeyValue]) -> dict[str, HostLease]:
        leases = {}
        for kv in kvs:
            lease = lease_of(kv.value, kv.lease)
            if lease is None or kv.key != self.settings.key(lease.subnet):
                log.warning("cluster: %s is not a lease of this pool: ignored", kv.key)
                continue
            leases[kv.key] = lease
        return leases

    # -- running ----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the lease and follow the other hosts until cancelled (then the etcd client
        is closed); started once the routes left by an earlier daemon are known."""
        try:
            self._routes = await self._kernel.call(cluster_routes)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._keep_lease)
                nursery.start_soon(self._follow_hosts)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True):
                await self.close()

    async def close(self) -> None:
        await self._etcd.aclose()

    def _trouble(self, part: str, problem: str | None) -> None:
        """Note (or clear, with None) what ``part`` cannot do; logged when it changes."""
        before = self._problems.get(part)
        if problem is None:
            if before is not None:
                log.info("cluster: %s: etcd reachable again", part)
                del self._problems[part]
        else:
            if before != problem:
                log.warning("cluster: %s: %s (serving on with what it has)", part, problem)
            self._problems[part] = problem

    async def _keep_lease(self) -> None:
        assert self.lease is not None, "acquire first"
        while True:
            # while etcd is away, asked every second, so the lease lives as long as it can
            await trio.sleep(1.0 if "lease" in self._problems else self.settings.heartbeat)
            try:
                if await self._etcd.keep_alive(self.lease.lease_id) > 0:
                    self._trouble("lease", None)
                    continue
                await self._lease_again()
            except EtcdUnavailable as exc:
                self._trouble("lease", str(exc))

    async def _lease_again(self) -> None:
        """The lease expired (etcd was away longer than the TTL): the same subnet again,
        under a new lease, unless another host took it meanwhile."""
        assert self.lease is not None
        subnet = self.lease.subnet
        lease_id = await self._etcd.grant(self.settings.ttl)
        lease = HostLease(subnet, self.settings.advertise, self.lease.since, lease_id)
        if await self._etcd.create(self.settings.key(subnet), lease.value(), lease_id):
            self.lease = lease
            self._trouble("lease", None)
            log.warning("cluster: lease of %s expired; leased again (lease %x)", subnet, lease_id)
            return
        self._trouble("lease", f"{subnet} was leased to another host after ours expired")

    async def _follow_hosts(self) -> None:
        backoff = FIRST_BACKOFF
        while True:
            try:
                kvs, revision = await self._etcd.read_prefix(self.settings.prefix)
                self.hosts = self._parse(kvs)
                await self._apply_routes()
                self._trouble("watch", None)
                backoff = FIRST_BACKOFF
                async for events in self._etcd.watch_prefix(self.settings.prefix, revision):
                    for event in events:
                        if event.deleted:
                            self.hosts.pop(event.kv.key, None)
                        else:
                            self.hosts.update(self._parse([event.kv]))
                    await self._apply_routes()
            except EtcdUnavailable as exc:
                self._trouble("watch", str(exc))
                await trio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _apply_routes(self) -> None:
        wanted = routes_wanted(self.settings, self.hosts.values())
        place, delete = route_changes(self._routes, wanted)
        if not place and not delete:
            return
        failed = await self._kernel.call(change_cluster_routes, place, delete)
        for subnet in delete:
            self._routes.pop(subnet, None)
            log.info("cluster: route to %s deleted (its host's lease is gone)", subnet)
        for subnet, via in place.items():
            if subnet not in failed:
                self._routes[subnet] = via
                log.info("cluster: route to %s via %s", subnet, via)
        for subnet, why in failed.items():
            log.warning("cluster: route to %s: %s", subnet, why)
        self.route_failures = failed
