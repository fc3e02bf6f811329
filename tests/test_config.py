import json
import logging

import pytest

from dockernetd import daemon
from dockernetd.cli import parse_args
from dockernetd.errors import ConfigError


def test_defaults_are_dockers():
    config = parse_args([])
    assert config.bridge_name == "docker0"
    assert config.using_default_bridge
    assert (config.iptables, config.ip_forward, config.ip_masq, config.icc) == (True,) * 4
    assert config.ip == "0.0.0.0"
    assert config.socket == "/run/dockernetd/dockernetd.sock"
    assert config.job_env() == {
        "EnableIptables": True,
        "InterContainerCommunication": True,
        "EnableIpForward": True,
        "EnableIpMasq": True,
        "BridgeIface": "",
        "BridgeIP": "",
        "FixedCIDR": "",
        "DefaultBindingIP": "0.0.0.0",
    }


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--icc=false"], False),
        (["--icc", "false"], False),
        (["--icc=0"], False),
        (["--icc=F"], False),
        (["--icc"], True),
        (["--icc=TRUE"], True),
        (["--icc=1"], True),
    ],
)
def test_booleans_parse_like_go(argv, expected):
    assert parse_args(argv).icc is expected


def test_bad_boolean():
    with pytest.raises(ConfigError, match="invalid boolean value 'yes'"):
        parse_args(["--icc=yes"])


def test_bridge_and_bip_are_exclusive():
    with pytest.raises(ConfigError) as exc:
        parse_args(["-b", "br0", "--bip", "10.0.0.1/24"])
    assert str(exc.value) == (
        "You specified -b & --bip, mutually exclusive options. Please specify only one."
    )


def test_bridge_none_and_bip_are_exclusive_too():
    with pytest.raises(ConfigError, match="mutually exclusive"):
        parse_args(["-b", "none", "--bip", "10.0.0.1/24"])


def test_icc_needs_iptables():
    with pytest.raises(ConfigError) as exc:
        parse_args(["--iptables=false", "--icc=false"])
    assert str(exc.value) == (
        "You specified --iptables=false with --icc=false. ICC uses iptables to function. "
        "Please set --icc or --iptables to true."
    )


def test_iptables_off_quietly_disables_masquerade():
    config = parse_args(["--iptables=false"])
    assert config.ip_masq is False
    assert config.job_env()["EnableIpMasq"] is False


@pytest.mark.parametrize("flag", ["--bip", "--fixed-cidr"])
@pytest.mark.parametrize("value", ["10.0.0.1", "10.0.0.300/24", "nonsense", "10.0.0.1/33"])
def test_bad_cidr(flag, value):
    with pytest.raises(ConfigError) as exc:
        parse_args([flag, value])
    assert str(exc.value) == f"invalid CIDR address: {value}"


@pytest.mark.parametrize("value", ["localhost", "1.2.3", "::1x"])
def test_bad_default_ip(value):
    with pytest.raises(ConfigError) as exc:
        parse_args(["--ip", value])
    assert str(exc.value) == f"{value} is not an ip address"


def test_network_disabled():
    assert parse_args(["-b", "none"]).network_disabled


def test_bridge_name_too_long():
    with pytest.raises(ConfigError, match="Interface name abcdefghijklmnop too long"):
        parse_args(["-b", "abcdefghijklmnop"])


@pytest.mark.parametrize("mtu", ["-1", "67", "65536"])
def test_bad_mtu(mtu):
    with pytest.raises(ConfigError, match="invalid MTU"):
        parse_args(["--mtu", mtu])


def test_unknown_flag_is_a_usage_error():
    with pytest.raises(ConfigError, match="unrecognized arguments: --nope"):
        parse_args(["--nope"])


def write(tmp_path, content) -> str:
    path = tmp_path / "daemon.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_config_file_sets_values(tmp_path):
    path = write(
        tmp_path, {"bip": "10.9.0.1/16", "icc": False, "mtu": 1400, "fixed-cidr": "10.9.1.0/24"}
    )
    config = parse_args(["--config-file", path])
    assert (config.bip, config.icc, config.mtu, config.fixed_cidr) == (
        "10.9.0.1/16",
        False,
        1400,
        "10.9.1.0/24",
    )


def test_key_in_flag_and_file_is_an_error(tmp_path):
    path = write(tmp_path, {"fixed-cidr": "10.9.1.0/24"})
    with pytest.raises(ConfigError) as exc:
        parse_args(["--config-file", path, "--fixed-cidr", "10.9.2.0/24"])
    assert str(exc.value) == (
        "the following directives are specified both as a flag and in the configuration file: "
        "fixed-cidr: (from flag: 10.9.2.0/24, from file: 10.9.1.0/24)"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"bogus": 1}, "don't match any configuration option: bogus"),
        ({"icc": "false"}, "invalid value for 'icc' in config file"),
        ({"mtu": True}, "invalid value for 'mtu' in config file"),
        ("[1, 2]", "must hold a JSON object"),
        ("{not json", "is not valid JSON"),
    ],
)
def test_bad_config_files(tmp_path, content, message):
    with pytest.raises(ConfigError, match=message):
        parse_args(["--config-file", write(tmp_path, content)])


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="unable to read config file"):
        parse_args(["--config-file", str(tmp_path / "absent.json")])


def test_file_values_are_validated_too(tmp_path):
    path = write(tmp_path, {"bridge": "br0", "bip": "10.0.0.1/24"})
    with pytest.raises(ConfigError, match="mutually exclusive"):
        parse_args(["--config-file", path])


def test_daemon_exits_2_with_one_line_on_stderr(capsys):
    assert daemon.main(["--iptables=false", "--icc=false"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dockernetd: You specified --iptables=false with --icc=false.")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--bridge",
        "--bip",
        "--fixed-cidr",
        "--iptables",
        "--ip-forward",
        "--ip-masq",
        "--icc",
        "--ip",
        "--mtu",
        "--socket",
        "--group",
        "--config-file",
        "--log-level",
        "--default-address-pool",
        "--allow-direct-routing",
        "--firewall-self-heal",
    ):
        assert flag in out


def test_sighup_applies_the_log_level_and_names_what_needs_a_restart(tmp_path, caplog):
    path = write(tmp_path, {"icc": True, "log-level": "info"})
    argv = ["--config-file", path]
    running = parse_args(argv)
    root = logging.getLogger()
    level = root.level
    try:
        write(tmp_path, {"icc": False, "mtu": 1400, "log-level": "debug"})
        daemon._reload(running, argv)
        assert root.level == logging.DEBUG
        assert "SIGHUP: icc, mtu changed; restart dockernetd to apply" in caplog.messages
        write(tmp_path, "{not json")
        daemon._reload(running, argv)
        assert any("SIGHUP: configuration not reloaded" in m for m in caplog.messages)
        assert root.level == logging.DEBUG  # a bad file changes nothing
    finally:
        root.setLevel(level)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], ""),
        (["--metrics-addr", "127.0.0.1:9323"], "127.0.0.1:9323"),
        (["--metrics-addr=[::1]:0"], "[::1]:0"),
        (["--metrics-addr", "0.0.0.0:65535"], "0.0.0.0:65535"),
    ],
)
def test_metrics_addr(argv, expected):
    assert parse_args(argv).metrics_addr == expected


@pytest.mark.parametrize(
    "value",
    [
        "localhost:9323",
        "127.0.0.1",
        "127.0.0.1:",
        "::1:9323",
        "[127.0.0.1]:1",
        "1.2.3.4:65536",
        ":9323",
    ],
)
def test_bad_metrics_addr(value):
    with pytest.raises(ConfigError) as err:
        parse_args(["--metrics-addr", value])
    assert str(err.value) == (
        f"invalid metrics-addr {value!r}: want HOST:PORT with an IP address, "
        "e.g. 127.0.0.1:9323 or [::1]:9323"
    )


def test_metrics_addr_from_the_config_file(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"metrics-addr": "127.0.0.1:9323"}))
    assert parse_args(["--config-file", str(path)]).metrics_addr == "127.0.0.1:9323"


def test_allow_direct_routing_is_off_unless_asked(tmp_path):
    assert parse_args([]).allow_direct_routing is False
    assert parse_args(["--allow-direct-routing"]).allow_direct_routing is True
    path = write(tmp_path, {"allow-direct-routing": True})
    assert parse_args(["--config-file", path]).public()["allow-direct-routing"] is True


def test_firewall_self_heal_is_on_unless_turned_off(tmp_path):
    assert parse_args([]).firewall_self_heal is True
    assert parse_args(["--firewall-self-heal=false"]).firewall_self_heal is False
    path = write(tmp_path, {"firewall-self-heal": False})
    assert parse_args(["--config-file", path]).public()["firewall-self-heal"] is False


def test_docker_plugin_is_off_unless_asked(tmp_path):
    default = parse_args([])
    assert (default.docker_plugin, default.docker_plugin_socket) == (
        False,
        "/run/docker/plugins/dockernetd.sock",
    )
    assert parse_args(["--docker-plugin"]).docker_plugin is True
    path = write(tmp_path, {"docker-plugin": True, "docker-plugin-socket": "/run/p/d.sock"})
    public = parse_args(["--config-file", path]).public()
    assert (public["docker-plugin"], public["docker-plugin-socket"]) == (True, "/run/p/d.sock")


def test_docker_plugin_needs_networking():
    with pytest.raises(ConfigError) as exc:
        parse_args(["--docker-plugin", "-b", "none"])
    assert str(exc.value) == "--docker-plugin serves networks: it cannot be used with -b none"
