import logging

import pytest

from dockernetd.errors import IpOutOfRange, StartupError
from dockernetd.jobs import Job, OneLineFormatter, Peer, run_job


def finished(caplog) -> logging.LogRecord:
    records = [r for r in caplog.records if "OUTCOME" in getattr(r, "fields", {})]
    assert len(records) == 1
    return records[0]


def test_ok_job_logs_one_entry_with_fields(caplog):
    caplog.set_level(logging.DEBUG, "dockernetd.jobs")
    with run_job(Job("allocate_interface", "web1", Peer(pid=42, uid=0, gid=0))):
        pass
    record = finished(caplog)
    assert record.levelno == logging.INFO
    fields = record.fields
    assert fields["JOB"] == "allocate_interface"
    assert fields["CONTAINER_ID"] == "web1"
    assert (fields["PEER_UID"], fields["PEER_PID"]) == (0, 42)
    assert fields["OUTCOME"] == "ok"
    assert fields["DURATION_US"] >= 0
    assert "ERROR_CODE" not in fields
    assert any(r.getMessage() == "allocate_interface(web1): start" for r in caplog.records)


def test_api_error_is_logged_with_its_code_and_propagates(caplog):
    with pytest.raises(IpOutOfRange), run_job(Job("allocate_interface", "web1")):
        raise IpOutOfRange("10.0.0.1")
    record = finished(caplog)
    assert record.levelno == logging.WARNING
    assert record.fields["OUTCOME"] == "error" and record.fields["ERROR_CODE"] == 1002
    assert not record.exc_info


def test_startup_error_has_no_traceback(caplog):
    with pytest.raises(StartupError), run_job(Job("init_networkdriver", env={"BridgeIface": ""})):
        raise StartupError("Interface br0 has no IP addresses")
    record = finished(caplog)
    assert record.levelno == logging.ERROR and not record.exc_info
    assert record.fields["JOB_ENV"] == '{"BridgeIface": ""}'


def test_bug_is_logged_with_traceback(caplog):
    with pytest.raises(ZeroDivisionError), run_job(Job("status")):
        1 / 0  # noqa: B018
    record = finished(caplog)
    assert record.fields["ERROR_CODE"] == -32603 and record.exc_info is not None


def test_one_line_formatter_appends_fields():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "status: ok", None, None)
    record.fields = {"JOB": "status", "OUTCOME": "ok"}
    line = OneLineFormatter().format(record)
    assert line.endswith("INFO status: ok [JOB=status OUTCOME=ok]")
    assert "\n" not in line


def test_a_query_is_logged_at_debug_when_it_succeeds_and_as_usual_when_it_fails(caplog):
    caplog.set_level(logging.DEBUG, "dockernetd.jobs")
    with run_job(Job("status"), query=True):
        pass
    assert finished(caplog).levelno == logging.DEBUG
    caplog.clear()
    with pytest.raises(IpOutOfRange), run_job(Job("list_interfaces"), query=True):
        raise IpOutOfRange("10.0.0.1")
    assert finished(caplog).levelno == logging.WARNING


def test_nothing_is_formatted_below_the_log_level(caplog):
    caplog.set_level(logging.INFO, "dockernetd.jobs")
    with run_job(Job("status"), query=True):
        pass
    assert not [r for r in caplog.records if "OUTCOME" in getattr(r, "fields", {})]
