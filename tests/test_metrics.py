"""The metrics' pure parts: histograms, RPC counting, and the families a scrape gets."""

import json

import trio
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dockernetd.jobs import Peer
from dockernetd.metrics import CommitTimes, Histogram, ProxyCounts, RpcMetrics, process_age
from dockernetd.prometheus import Collector, registry_of

from test_rpc import make_dispatcher


def test_histogram_buckets_are_cumulative_and_bounds_inclusive():
    h = Histogram((0.001, 0.01))
    for seconds in (0.0005, 0.001, 0.005, 0.5):
        h.observe(seconds)
    assert h.buckets() == [("0.001", 2), ("0.01", 3), ("+Inf", 4)]
    assert h.sum == 0.5065


def test_rpc_metrics_count_unknown_methods_under_one_label():
    rpc = RpcMetrics(frozenset({"status"}))
    rpc.observe("status", None, 0.0001)
    rpc.observe("no-such-method", -32601, 0.0001)
    rpc.observe(["not", "a", "string"], -32600, 0.0001)
    rpc.observe(None, -32700, 0.0001)
    assert rpc.calls == {("status", "ok"): 1, ("unknown", "error"): 3}
    assert rpc.errors == {-32601: 1, -32600: 1, -32700: 1}
    assert set(rpc.latency) == {"status", "unknown"}


def test_commit_times_by_table_set():
    times = CommitTimes()
    times.observe(("nat",), 0.002)
    times.observe(("nat", "filter"), 0.004)
    assert {k: h.buckets()[-1][1] for k, h in times.by_tables.items()} == {
        "nat": 1,
        "nat,filter": 1,
    }


def test_process_age_counts_from_the_process_start():
    assert 0 < process_age() < 24 * 3600


def samples_of(collector: Collector) -> dict:
    text = generate_latest(registry_of(collector)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_scrape_reads_the_dispatchers_counts_and_the_model():
    dispatcher = make_dispatcher()
    counts = ProxyCounts()
    counts.relayed["udp"] += 3
    collector = Collector(dispatcher._service, dispatcher.metrics, CommitTimes(), counts)
    peer = Peer(pid=1, uid=0, gid=0)
    for line in (
        {"jsonrpc": "2.0", "method": "allocate_interface", "params": {"id": "a"}, "id": 1},
        [{"jsonrpc": "2.0", "method": "status", "id": 2}, 7],
    ):
        trio.run(dispatcher.handle_line, json.dumps(line).encode(), peer)
    samples = samples_of(collector)
    assert (
        samples[
            "dockernetd_rpc_requests_total", (("method", "allocate_interface"), ("outcome", "ok"))
        ]
        == 1
    )
    assert samples["dockernetd_rpc_requests_total", (("method", "status"), ("outcome", "ok"))] == 1
    assert (
        samples["dockernetd_rpc_requests_total", (("method", "unknown"), ("outcome", "error"))] == 1
    )
    assert samples["dockernetd_rpc_errors_total", (("code", "-32600"),)] == 1
    pool = (("bridge", "docker0"), ("pool", "172.17.0.0/16"))
    assert samples["dockernetd_addresses_in_use", pool] == 1
    assert samples["dockernetd_proxy_connections_total", (("proto", "udp"),)] == 3
    assert ("dockernetd_boot_duration_seconds", ()) not in samples  # not ready yet
    collector.boot_seconds = 0.4
    assert samples_of(collector)["dockernetd_boot_duration_seconds", ()] == 0.4


def test_a_daemon_without_network_still_scrapes():
    dispatcher = make_dispatcher(network=False)
    collector = Collector(dispatcher._service, dispatcher.metrics, CommitTimes(), ProxyCounts())
    samples = samples_of(collector)
    assert samples["dockernetd_links", ()] == 0
    assert samples["dockernetd_state_file_bytes", ()] == 0
    assert not any(name == "dockernetd_addresses_in_use" for name, _ in samples)


def test_docs_list_every_metric():
    from pathlib import Path

    docs = (Path(__file__).parent.parent / "docs" / "metrics.md").read_text()
    dispatcher = make_dispatcher()
    collector = Collector(dispatcher._service, dispatcher.metrics, CommitTimes(), ProxyCounts())
    collector.boot_seconds = 0.1
    names = {family.name for family in registry_of(collector).collect()}
    assert len(names) >= 20
    for name in names:
        if name.startswith("dockernetd_process_"):
            assert "`dockernetd_process_*`" in docs
        else:
            assert f"`{name}`" in docs or f"`{name}_total`" in docs, name
