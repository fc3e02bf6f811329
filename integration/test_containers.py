"""Containers wired with what allocate_interface answers really talk through the bridge."""

from netns import Netns, attach_container


def test_two_containers_ping_each_other_and_the_gateway(host: Netns, make_netns, make_daemon):
    daemon = make_daemon()
    a, b = make_netns("dnd-c"), make_netns("dnd-c")
    ia = daemon.call("allocate_interface", id="a")
    ib = daemon.call("allocate_interface", id="b")
    attach_container(host, a, ia)
    attach_container(host, b, ib)
    a.exec("ping", "-c", "1", "-W", "5", ib["ip"])
    b.exec("ping", "-c", "1", "-W", "5", ia["ip"])
    a.exec("ping", "-c", "1", "-W", "5", ia["gateway"])
    neighbours = b.ip_json("neigh", "show", ia["ip"])
    assert neighbours[0]["lladdr"] == ia["mac_address"] == "02:42:ac:11:00:02"
