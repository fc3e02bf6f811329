"""--metrics-addr for real: a daemon in a namespace, scraped over HTTP from inside it."""

import json
import os
import socket
import subprocess
import sys
import time

from prometheus_client.parser import text_string_to_metric_families

from dockernetd.api import METHODS
from dockernetd.client import RpcError

from netns import Netns, attach_container, iptables_rules, probe, start_echo_server

METRICS = "127.0.0.1:9323"

# Run inside the namespace: one HTTP/1.1 connection (keep-alive), each request's
# status, headers and body as JSON.
HTTP_CLIENT = """
import http.client, json, sys
conn = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=10)
out = []
for method, path in json.loads(sys.argv[3]):
    conn.request(method, path)
    r = conn.getresponse()
    out.append({"status": r.status, "headers": dict(r.getheaders()), "body": r.read().decode()})
print(json.dumps(out))
"""


def http(ns: Netns, *requests: tuple[str, str], address: str = METRICS) -> list[dict]:
    host, _, port = address.rpartition(":")
    result = ns.exec(sys.executable, "-c", HTTP_CLIENT, host, port, json.dumps(requests))
    return json.loads(result.stdout)


def scrape(ns: Netns) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, keyed by (name, sorted labels)."""
    [response] = http(ns, ("GET", "/metrics"))
    assert response["status"] == 200
    assert response["headers"]["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response["body"])
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[name, tuple(sorted(labels.items()))]


def test_metrics_count_what_the_daemon_did(host: Netns, make_netns, make_daemon, processes):
    daemon = make_daemon("--metrics-addr", METRICS)
    web = make_netns("dnd-web")
    with daemon.client() as c:
        iface = c.call("allocate_interface", id="web")
        c.call("allocate_interface", id="db")
        c.call("allocate_port", id="web", container_port=80, host_port=8080)
        c.call("allocate_port", id="db", container_port=53, proto="udp")
        c.call("link", action="add", parent_ip=iface["ip"], child_ip="172.17.0.3", ports=["5432"])
        try:
            c.call("allocate_port", id="web", container_port=0)
        except RpcError as exc:
            assert exc.code == -32602
        for bogus in ("reboot", "x" * 60):  # an unknown method is counted as "unknown"
            try:
                c.call(bogus)
            except RpcError as exc:
                assert exc.code == -32601
        assert c.send_line(b"[NaN]")["error"]["code"] == -32700
    attach_container(host, web, iface)
    processes.append(start_echo_server(web, "tcp", 80, "web"))
    assert probe(host, "tcp", "127.0.0.1", 8080).startswith("web:")  # through the proxy
    held = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2)]
    for s in held:
        s.connect(daemon.socket)

    deadline = time.monotonic() + 10
    while value(samples := scrape(host), "dockernetd_rpc_connections") != 2:
        assert time.monotonic() < deadline, "the daemon did not count the 2 open connections"
        time.sleep(0.1)
    for s in held:
        s.close()

    requests = "dockernetd_rpc_requests_total"
    assert value(samples, requests, method="allocate_interface", outcome="ok") == 2
    assert value(samples, requests, method="allocate_port", outcome="ok") == 2
    assert value(samples, requests, method="allocate_port", outcome="error") == 1
    assert value(samples, requests, method="link", outcome="ok") == 1
    assert value(samples, requests, method="unknown", outcome="error") == 3
    methods = {dict(labels)["method"] for name, labels in samples if name == requests}
    assert methods <= {m.name for m in METHODS} | {"rpc.discover", "unknown"}
    errors = "dockernetd_rpc_errors_total"
    assert value(samples, errors, code="-32602") == 1
    assert value(samples, errors, code="-32601") == 2
    assert value(samples, errors, code="-32700") == 1
    latency = "dockernetd_rpc_request_duration_seconds"
    assert value(samples, f"{latency}_count", method="allocate_interface") == 2
    assert value(samples, f"{latency}_bucket", method="allocate_interface", le="+Inf") == 2
    assert value(samples, f"{latency}_sum", method="allocate_interface") > 0

    pool = {"bridge": "docker0", "pool": "172.17.0.0/16"}
    assert value(samples, "dockernetd_addresses_in_use", **pool) == 2
    # 172.17.0.2 - 172.17.255.254, less the gateway 172.17.42.1, less the two in use
    assert value(samples, "dockernetd_addresses_free", **pool) == 65533 - 1 - 2
    assert value(samples, "dockernetd_port_mappings", proto="tcp") == 1
    assert value(samples, "dockernetd_port_mappings", proto="udp") == 1
    assert value(samples, "dockernetd_links") == 1
    assert value(samples, "dockernetd_proxies") == 2
    assert value(samples, "dockernetd_proxy_connections_total", proto="tcp") == 1
    assert value(samples, "dockernetd_proxy_connections_total", proto="udp") == 0

    kernel = iptables_rules(host)  # a fresh namespace: every rule in it is the daemon's
    for table in ("nat", "filter"):
        in_kernel = sum(line.startswith("-A") for line in kernel[table])
        assert value(samples, "dockernetd_firewall_rules", table=table) == in_kernel
    commits = "dockernetd_firewall_commit_duration_seconds_count"
    assert value(samples, commits, tables="nat,filter") >= 1  # boot
    assert value(samples, commits, tables="nat") >= 2  # the two mappings
    assert value(samples, commits, tables="filter") >= 3  # and the link

    state_file = f"{daemon.state_dir}/state.jsonl"
    assert value(samples, "dockernetd_state_file_bytes") == os.path.getsize(state_file)
    assert value(samples, "dockernetd_state_compactions_total") >= 1  # the one at boot
    assert 0 < value(samples, "dockernetd_boot_duration_seconds") < 60
    assert value(samples, "dockernetd_process_open_fds") > 0
    assert all(name.startswith("dockernetd_") for name, _ in samples)


def test_the_metrics_endpoint_speaks_http(host: Netns, make_daemon):
    make_daemon("--metrics-addr", METRICS)
    got, head, missing, post = http(
        host, ("GET", "/metrics"), ("HEAD", "/metrics"), ("GET", "/"), ("POST", "/metrics")
    )  # four requests on one kept-alive connection
    assert got["status"] == 200 and "dockernetd_rpc_requests_total" in got["body"]
    assert head["status"] == 200 and head["body"] == ""
    assert int(head["headers"]["Content-Length"]) > 0
    assert (missing["status"], missing["body"]) == (404, "not found: metrics are at /metrics\n")
    assert (post["status"], post["headers"]["Allow"]) == (405, "GET, HEAD")

    garbage = host.exec(
        sys.executable,
        "-c",
        "import socket; s = socket.create_connection(('127.0.0.1', 9323)); "
        "s.sendall(b'NOT HTTP\\r\\n\\r\\n'); print(s.recv(100).split(b'\\r\\n')[0].decode())",
    )
    assert garbage.stdout.strip() == "HTTP/1.1 400 Bad Request"
    assert http(host, ("GET", "/metrics"))[0]["status"] == 200  # and it still serves


def test_metrics_on_the_ipv6_loopback_only(host: Netns, make_daemon):
    make_daemon("--metrics-addr", "[::1]:9323")
    assert http(host, ("GET", "/metrics"), address="::1:9323")[0]["status"] == 200
    refused = host.exec(
        sys.executable,
        "-c",
        "import socket; socket.create_connection(('127.0.0.1', 9323))",
        check=False,
    )
    assert "ConnectionRefusedError" in refused.stderr


def test_a_metrics_address_in_use_stops_the_start(host: Netns, make_daemon):
    holder = host.popen(
        sys.executable,
        "-c",
        "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 9323)); s.listen();"
        "print('ready', flush=True); time.sleep(60)",
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline().strip() == b"ready"
        code, stderr = make_daemon("--metrics-addr", METRICS, start=False).run_to_exit()
        assert code == 1
        assert (
            "dockernetd: cannot serve metrics on 127.0.0.1:9323: Address already in use" in stderr
        )
    finally:
        holder.kill()
        holder.wait()
