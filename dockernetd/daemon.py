"""``dockernetd``: parse the flags, run init_networkdriver, serve the socket.

Exit codes: 0 after SIGTERM/SIGINT, 1 when the daemon cannot start (init
failed, socket busy), 2 for bad flags or config file.  Errors are one line
on stderr, never a traceback.

Under systemd (``contrib/systemd``): the socket may come from socket
activation; READY=1 is sent once init_networkdriver succeeded and the socket
is served, STATUS= as the counts change, WATCHDOG=1 from the trio loop (so a
stuck loop gets the daemon restarted), STOPPING=1 on shutdown.  SIGHUP
re-reads the flags and config file and applies the log level; anything else
that changed needs a restart, and the daemon says so.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

import trio

from .cli import parse_args
from .config import Config
from .driver import init_networkdriver
from .errors import ApiError, ConfigError, StartupError
from .handlers import Service
from .jobs import OneLineFormatter
from .kernel.worker import KernelContext, KernelWorker, open_kernel_worker
from .metrics import CommitTimes, ProxyCounts, RpcMetrics, process_age
from .proxy import ProxySupervisor
from .restore import restore
from .rpc import Dispatcher
from .server import BoundSocket, Server, bind_unix_socket
from .state import StateLog
from .systemd import JournalHandler, Notifier, activated_socket, stderr_is_journal

if TYPE_CHECKING:
    from .cluster import ClusterSettings
    from .cluster_member import ClusterMember
    from .prometheus import Collector

log = logging.getLogger("dockernetd")

#: The collector's first threshold: allocations between young-generation collections.
#: Python's 700 makes a 1,000-port range run ~70 collections, and with thousands of proxies
#: alive the older generations' turns cost tens of ms (a range: 115-170 ms at 700, 90-100
#: ms at 3,000).  Higher saves little more and lets cyclic garbage pile up (10,000: RSS
#: +24 MB after a second round of the load test, where 3,000 gives back 9 MB).
GC_THRESHOLD = 3_000
SHUTDOWN_GRACE = 10.0
STATUS_PERIOD = 5.0
#: How often the iptables firewall is asked whether another program changed it (one
#: getsockopt per table): what another program removes of ours is back within this and a
#: repair.  The nftables one is asked when nfnetlink announces a change, once the burst
#: settles (every allocate_port is a change too: checked at most 20 times a second).
FIREWALL_CHECK_PERIOD = 0.5
FIREWALL_EVENT_SETTLE = 0.05


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        config = parse_args(argv)
    except ConfigError as exc:
        print(f"dockernetd: {exc}", file=sys.stderr)
        Notifier().send(f"STATUS=bad configuration: {exc}")
        return 2
    setup_logging(config.log_level)
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    refused: list[BaseException] = []
    try:
        trio.run(run, config, argv)
    except* StartupError as group:  # raised inside nurseries, so it arrives grouped
        refused = _leaves(group)
    for reason in refused:
        print(f"dockernetd: {reason}", file=sys.stderr)
        Notifier().send(f"STATUS=failed to start: {reason}")  # shown by systemctl status
    return 1 if refused else 0


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    return [
        leaf
        for exc in group.exceptions
        for leaf in (_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    ]


def setup_logging(level: str) -> None:
    if stderr_is_journal():
        handler: logging.Handler = JournalHandler()
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(OneLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_log_level(level)


def set_log_level(level: str) -> None:
    root = logging.getLogger()
    root.setLevel(level.upper())
    for noisy in ("pyroute2", "asyncio"):  # their debug output is per netlink message
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
    for chatty in ("httpx", "httpcore"):  # a line per etcd request, at INFO
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))


async def run(config: Config, argv: Sequence[str] = ()) -> None:
    notifier = Notifier()
    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    with trio.open_signal_receiver(*handled) as signals:
        commit_times = CommitTimes()
        async with (
            open_kernel_worker(
                functools.partial(
                    KernelContext, commit_times, config.firewall_backend, config.ip6tables
                )
            ) as kernel,
            trio.open_nursery() as proxies,
            trio.open_nursery() as cluster_tasks,
        ):
            supervisor = ProxySupervisor(proxies)
            member = None
            if config.cluster is not None:  # the bridge's subnet is the cluster's lease
                member = await _join_cluster(config.cluster, kernel, notifier, signals)
                if member is None:  # stopped while waiting for etcd
                    return
                # kept alive from now on: the rest of a start (a restore, a loaded host)
                # may take longer than the lease's TTL
                await cluster_tasks.start(member.run)
                config = dataclasses.replace(config, bip=member.bridge_address())
            if config.network_disabled:
                log.info("networking disabled (-b none): init_networkdriver skipped")
                driver = None
            else:
                driver = await init_networkdriver(config, kernel, supervisor)
            state = StateLog(config.state_dir) if driver else None
            if driver and state:
                await restore(driver, state)
            listening = _listen(config)
            plugin_socket: BoundSocket | None = None
            events: socket.socket | None = None  # nftables' change announcements
            try:
                if config.docker_plugin:
                    # bound before anything is served: once the daemon answers, so does it
                    plugin_socket = bind_unix_socket(config.docker_plugin_socket, "", mode=0o600)
                service = Service(config, driver, state, member)
                dispatcher = Dispatcher(service)
                server = Server(dispatcher)
                async with trio.open_nursery() as nursery:
                    await nursery.start(server.serve, listening.sock)
                    log.info("serving JSON-RPC on %s", listening.path)
                    collector = None
                    if config.metrics_addr:
                        collector = await _serve_metrics(
                            config.metrics_addr,
                            nursery,
                            service,
                            dispatcher.metrics,
                            commit_times,
                            supervisor.counts,
                        )
                    if plugin_socket is not None:
                        await _serve_docker_plugin(plugin_socket, nursery, service)
                    # what boot made (modules, restored proxies) lives as long as the
                    # daemon: out of the collector's way from now on
                    gc.freeze()
                    notifier.send("READY=1", f"STATUS={service.summary()}")
                    if collector is not None:
                        collector.boot_seconds = process_age()
                    if notifier.enabled:
                        nursery.start_soon(_inform_systemd, notifier, service)
                    if driver is not None and config.iptables and config.firewall_self_heal:
                        if config.firewall_backend == "nftables":
                            from .kernel.nftables import open_ruleset_events  # loaded already

                            events = open_ruleset_events()
                        nursery.start_soon(keep_firewall, service, events)
                    async for signum in signals:
                        if signum == signal.SIGHUP:
                            _reload(config, argv)
                            continue
                        log.info("%s: shutting down", signal.Signals(signum).name)
                        break
                    notifier.send("STOPPING=1")
                    await server.shutdown(SHUTDOWN_GRACE)
                    nursery.cancel_scope.cancel()
            finally:
                if events is not None:
                    events.close()
                listening.close()
                if plugin_socket is not None:
                    plugin_socket.close()
                if state:
                    state.close()
            proxies.cancel_scope.cancel()  # every proxy closes its sockets
            cluster_tasks.cancel_scope.cancel()  # the lease lives its TTL: a restart keeps it


async def _join_cluster(
    settings: ClusterSettings,
    kernel: KernelWorker,
    notifier: Notifier,
    signals: AsyncIterator[int],
) -> ClusterMember | None:
    """This host's subnet leased: waiting for etcd as long as it takes (saying so in
    STATUS=); None after SIGTERM/SIGINT meanwhile.  The member that holds no lease is
    closed here; the one returned closes itself when its run ends."""
    # Imported only when asked for: httpx adds 25 ms to a start.
    from .cluster_member import ClusterMember

    member = ClusterMember(settings, kernel)
    try:
        await _acquire(member, notifier, signals)
    finally:
        if member.lease is None:  # a full pool (StartupError), cancelled, or stopped
            with trio.CancelScope(shield=True):
                await member.close()
    return member if member.lease is not None else None


async def _acquire(member: ClusterMember, notifier: Notifier, signals: AsyncIterator[int]) -> None:
    async with trio.open_nursery() as nursery:

        async def acquire() -> None:
            await member.acquire(lambda why: notifier.send(f"STATUS={why}"))
            nursery.cancel_scope.cancel()

        nursery.start_soon(acquire)
        async for signum in signals:
            if signum != signal.SIGHUP:
                log.info("%s: shutting down", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


async def _serve_metrics(
    address: str,
    nursery: trio.Nursery,
    service: Service,
    rpc: RpcMetrics,
    commit_times: CommitTimes,
    proxy_counts: ProxyCounts,
) -> Collector:
    # Imported only when asked for: prometheus_client and h11 would add to every start.
    from .prometheus import Collector, metrics_server, open_metrics_listeners, registry_of

    collector = Collector(service, rpc, commit_times, proxy_counts)
    listeners = await open_metrics_listeners(address)
    await nursery.start(metrics_server(registry_of(collector)).serve, listeners)
    log.info("serving metrics on http://%s/metrics", address)
    return collector


async def _serve_docker_plugin(bound: BoundSocket, nursery: trio.Nursery, service: Service) -> None:
    # Imported only when asked for, as the metrics are.
    from .docker_plugin import DockerPlugin, plugin_server

    listener = trio.SocketListener(trio.socket.from_stdlib_socket(bound.sock))
    await nursery.start(plugin_server(DockerPlugin(service)).serve, [listener])
    log.info("serving Docker's plugin API on %s", bound.path)


def _listen(config: Config) -> BoundSocket:
    sock = activated_socket()
    if sock is None:
        return bind_unix_socket(config.socket, config.group)
    return BoundSocket(sock, sock.getsockname(), inode=None)  # systemd owns the file


async def _inform_systemd(notifier: Notifier, service: Service) -> None:
    """WATCHDOG=1 from the trio loop itself, and STATUS= whenever the counts changed."""
    watchdog = notifier.watchdog_interval()
    period = min(watchdog or STATUS_PERIOD, STATUS_PERIOD)
    last = ""
    while True:
        if watchdog:
            notifier.send("WATCHDOG=1")
        status = service.summary()
        if status != last:
            notifier.send(f"STATUS={status}")
            last = status
        await trio.sleep(period)


async def keep_firewall(service: Service, events: socket.socket | None = None) -> None:
    """Self-healing, for as long as the daemon runs: a round every FIREWALL_CHECK_PERIOD,
    or after each burst of ``events`` (nftables' change announcements).  A failed round
    (the xtables lock held for too long, say) is logged and the next one tried; it never
    takes the daemon down."""
    if events is not None:
        from .kernel.nftables import drain_events  # only with that backend
    while True:
        if events is None:
            await trio.sleep(FIREWALL_CHECK_PERIOD)
        else:
            await trio.lowlevel.wait_readable(events)
            await trio.sleep(FIREWALL_EVENT_SETTLE)
            drain_events(events)
        try:
            await service.heal_firewall()
        except ApiError as exc:
            log.warning("firewall: not repaired this time: %s", exc.message)
        except OSError as exc:  # a bridge the repair could not put back
            log.warning("firewall: not repaired this time: %s", exc)


def _reload(running: Config, argv: Sequence[str]) -> None:
    try:
        fresh = parse_args(argv)
    except ConfigError as exc:
        log.error("SIGHUP: configuration not reloaded: %s", exc)
        return
    set_log_level(fresh.log_level)
    changed = [
        f.name
        for f in dataclasses.fields(Config)
        if f.name != "log_level" and getattr(fresh, f.name) != getattr(running, f.name)
    ]
    if changed:
        log.warning("SIGHUP: %s changed; restart dockernetd to apply", ", ".join(changed))
    log.info("SIGHUP: configuration reloaded, log level %s", fresh.log_level)


if __name__ == "__main__":
    sys.exit(main())
