"""The metrics as Prometheus text exposition, over HTTP (``--metrics-addr``).

At scrape time :class:`Collector` turns the counters of :mod:`dockernetd.metrics`,
and counts read from the daemon's model (addresses, mappings, links, proxies,
rules, state file), into ``prometheus_client`` metric families, every name
prefixed ``dockernetd_``.  Label values come from fixed sets only: the
contract's method names, the error codes the daemon answers with, ``tcp`` and
``udp``, table names, the bridge and its pool.

HTTP is h11's (sans-IO) on a trio listener in the daemon's own loop, so a scrape
reads the model in the thread that changes it, between two RPC calls: no lock,
no torn count.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator

import h11
import trio
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder

from .errors import StartupError
from .handlers import Service
from .httpserve import TEXT, Answer, HttpServer
from .metrics import CommitTimes, ProxyCounts, RpcMetrics
from .netutil import parse_host_port

log = logging.getLogger("dockernetd.metrics")

METRICS_PATH = "/metrics"
MAX_SCRAPERS = 64  # connections at once; more are closed unanswered


class Collector:
    """The daemon's metric families, read when Prometheus scrapes."""

    def __init__(
        self,
        service: Service,
        rpc: RpcMetrics,
        commit_times: CommitTimes,
        proxy_counts: ProxyCounts,
    ) -> None:
        self._service = service
        self._rpc = rpc
        self._commit_times = commit_times
        self._proxy_counts = proxy_counts
        self.boot_seconds: float | None = None  # set once the daemon is ready

    def collect(self) -> Iterator[Metric]:
        yield from self._rpc_families()
        if self.boot_seconds is not None:
            yield _gauge(
                "boot_duration_seconds",
                "From the process's start to READY (init_networkdriver done, socket served)",
                self.boot_seconds,
            )
        yield from self._model_families()
        yield from self._firewall_families()
        yield from self._state_families()
        yield from self._cluster_families()

    def _rpc_families(self) -> Iterator[Metric]:
        rpc = self._rpc
        calls = CounterMetricFamily(
            "dockernetd_rpc_requests",
            "JSON-RPC requests answered, by method and outcome",
            labels=["method", "outcome"],
        )
        for (method, outcome), count in sorted(rpc.calls.items()):
            calls.add_metric([method, outcome], count)
        yield calls
        latency = HistogramMetricFamily(
            "dockernetd_rpc_request_duration_seconds",
            "Time to answer a JSON-RPC request, by method",
            labels=["method"],
        )
        for method, histogram in sorted(rpc.latency.items()):
            latency.add_metric([method], histogram.buckets(), histogram.sum)
        yield latency
        errors = CounterMetricFamily(
            "dockernetd_rpc_errors", "JSON-RPC error answers, by code", labels=["code"]
        )
        for code, count in sorted(rpc.errors.items()):
            errors.add_metric([str(code)], count)
        yield errors
        yield _gauge("rpc_connections", "Open connections to the RPC socket", rpc.open_connections)
        yield CounterMetricFamily(
            "dockernetd_rpc_connections_refused",
            "Connections refused for being over the limits",
            value=rpc.refused_connections,
        )

    def _model_families(self) -> Iterator[Metric]:
        driver = self._service.driver
        in_use = GaugeMetricFamily(
            "dockernetd_addresses_in_use",
            "Container addresses handed out, by bridge (one per network) and pool",
            labels=["bridge", "pool"],
        )
        free = GaugeMetricFamily(
            "dockernetd_addresses_free",
            "Container addresses left, by bridge (one per network) and pool",
            labels=["bridge", "pool"],
        )
        mappings = GaugeMetricFamily(
            "dockernetd_port_mappings", "Published ports, by protocol", labels=["proto"]
        )
        links = proxies = 0
        if driver is not None:
            for network in driver.networks:
                spec = network.spec
                labels = [spec.bridge, str(spec.ip_range or spec.subnet)]
                in_use.add_metric(labels, len(network.endpoints))
                free.add_metric(labels, network.ips.capacity - len(network.endpoints))
            by_proto = Counter(m.proto for e in driver.networks.endpoints() for m in e.ports)
            for proto in ("tcp", "udp"):
                mappings.add_metric([proto], by_proto[proto])
            links = len(driver.links.active)
            proxies = driver.mapper.running_proxies()
        yield in_use
        yield free
        yield mappings
        yield _gauge("links", "Active links (each two rules)", links)
        yield _gauge("proxies", "Userland proxies running", proxies)
        relayed = CounterMetricFamily(
            "dockernetd_proxy_connections",
            "Connections (tcp) and flows (udp) the proxies relayed",
            labels=["proto"],
        )
        open_now = GaugeMetricFamily(
            "dockernetd_proxy_open_connections",
            "Connections (tcp) and flows (udp) the proxies relay now",
            labels=["proto"],
        )
        for proto in ("tcp", "udp"):
            relayed.add_metric([proto], self._proxy_counts.relayed[proto])
            open_now.add_metric([proto], self._proxy_counts.open[proto])
        yield relayed
        yield open_now

    def _firewall_families(self) -> Iterator[Metric]:
        rules = GaugeMetricFamily(
            "dockernetd_firewall_rules",
            "Rules the daemon owns in the kernel, by table (what verify checks)",
            labels=["table"],
        )
        for table, count in sorted(self._service.owned_rules().items()):
            rules.add_metric([table], count)
        yield rules
        yield CounterMetricFamily(
            "dockernetd_firewall_repairs",
            "Drift entries put back after another program changed the daemon's rules",
            value=self._service.firewall_repairs,
        )
        commits = HistogramMetricFamily(
            "dockernetd_firewall_commit_duration_seconds",
            "Time to read, change and commit firewall tables, by the tables of the commit",
            labels=["tables"],
        )
        for tables, histogram in sorted(self._commit_times.by_tables.items()):
            commits.add_metric([tables], histogram.buckets(), histogram.sum)
        yield commits

    def _state_families(self) -> Iterator[Metric]:
        state = self._service.state
        size = state.file_size() if state else 0
        yield _gauge("state_file_bytes", "Size of the state file", size)
        yield CounterMetricFamily(
            "dockernetd_state_compactions",
            "Rewrites of the state file to its live records",
            value=state.compactions if state else 0,
        )

    def _cluster_families(self) -> Iterator[Metric]:
        """Only with --cluster-store."""
        member = self._service.cluster_member
        if member is None:
            return
        yield _gauge(
            "cluster_degraded",
            "1 while etcd cannot be reached (serving on with the lease and routes held)",
            int(member.degraded),
        )
        yield _gauge(
            "cluster_hosts", "Hosts holding a lease of the cluster's pool", len(member.hosts)
        )
        yield _gauge(
            "cluster_routes", "Routes to other hosts' subnets in the main table", member.route_count
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"dockernetd_{name}", documentation, value=value)


def registry_of(collector: Collector) -> CollectorRegistry:
    """The daemon's families and the process's own (CPU, memory, descriptors)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(namespace="dockernetd", registry=registry)
    return registry


async def open_metrics_listeners(address: str) -> list[trio.SocketListener]:
    """TCP listeners on ``HOST:PORT`` (validated by the config); StartupError if it cannot bind."""
    host, port = parse_host_port(address)
    try:
        return await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        raise StartupError(f"cannot serve metrics on {address}: {exc.strerror or exc}") from None


def metrics_server(registry: CollectorRegistry) -> HttpServer:
    """``GET /metrics`` over HTTP/1.1, at most MAX_SCRAPERS connections at once."""

    async def answer(request: h11.Request, body: bytes) -> Answer:
        if request.method not in (b"GET", b"HEAD"):
            return Answer(405, [TEXT, ("Allow", "GET, HEAD")], b"method not allowed\n")
        path = request.target.split(b"?", 1)[0]
        if path != METRICS_PATH.encode():
            return Answer(404, [TEXT], b"not found: metrics are at /metrics\n")
        accept = dict(request.headers).get(b"accept", b"").decode("latin-1")
        encoder, content_type = choose_encoder(accept)
        return Answer(200, [("Content-Type", content_type)], encoder(registry))

    return HttpServer(answer, name="metrics", max_connections=MAX_SCRAPERS, max_body=0)
