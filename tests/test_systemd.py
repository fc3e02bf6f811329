import logging
import os
import socket

from dockernetd import systemd


def test_notifier_is_off_without_notify_socket(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = systemd.Notifier()
    assert not notifier.enabled
    notifier.send("READY=1")  # nothing to send to, and no error
    assert notifier.watchdog_interval() is None


def test_notify_sends_datagrams(monkeypatch, tmp_path):
    path = str(tmp_path / "notify.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    systemd.Notifier().send("READY=1", "STATUS=docker0 up")
    assert receiver.recv(4096) == b"READY=1\nSTATUS=docker0 up"
    receiver.close()


def test_a_stale_notify_socket_is_a_warning_not_a_crash(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    notifier = systemd.Notifier()
    notifier.send("READY=1")
    notifier.send("STATUS=x")
    assert caplog.text.count("sd_notify failed") == 1


def test_watchdog_interval_is_half_and_only_for_us(monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", "@x")
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.Notifier().watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert systemd.Notifier().watchdog_interval() is None


def test_stderr_is_journal_compares_device_and_inode(monkeypatch):
    info = os.fstat(2)
    monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
    assert systemd.stderr_is_journal()
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    assert not systemd.stderr_is_journal()
    monkeypatch.delenv("JOURNAL_STREAM")
    assert not systemd.stderr_is_journal()


def test_journal_handler_sends_the_job_fields_only():
    sent = []
    handler = systemd.JournalHandler()
    handler._send = lambda message, **fields: sent.append((message, fields))
    record = logging.LogRecord(
        "dockernetd.jobs", logging.WARNING, __file__, 1, "%s: failed", ("x",), None
    )
    record.fields = {"JOB": "allocate_port", "ERROR_CODE": 1005}
    handler.emit(record)
    assert sent == [
        (
            "x: failed",
            {
                "PRIORITY": 4,
                "SYSLOG_IDENTIFIER": "dockernetd",
                "LOGGER": "dockernetd.jobs",
                "JOB": "allocate_port",
                "ERROR_CODE": "1005",
            },
        )
    ]


def test_no_activation_without_listen_fds(monkeypatch):
    monkeypatch.delenv("LISTEN_FDS", raising=False)
    assert systemd.activated_socket() is None
