"""`make demo` runs to its end and shows what it says it shows."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_shows_the_mission_and_leaves_nothing():
    result = subprocess.run(
        ["bash", str(ROOT / "contrib" / "demo.sh")], capture_output=True, text=True, timeout=120
    )
    out = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)
    assert result.returncode == 0, out + result.stderr
    fetched = re.findall(r"^  (\w+)\s+GET (\S+)\s+-> (.*)$", out, re.MULTILINE)
    assert fetched == [
        ("out", "http://192.0.2.1:8080/", "hello from web:80, you are 192.0.2.2"),  # DNAT
        ("host", "http://127.0.0.1:8080/", "hello from web:80, you are 172.17.42.1"),  # proxy
        ("db", "http://172.17.0.2:80/", "no answer (timed out)"),  # --icc=false
        ("db", "http://172.17.0.2:80/", "hello from web:80, you are 172.17.0.3"),  # linked
        ("db", "http://172.17.0.2:81/", "no answer (timed out)"),  # only the linked port
        ("red", "http://172.17.0.2:80/", "no answer (timed out)"),  # another network: isolated
        ("out", "http://192.0.2.1:8080/", "no answer ([Errno 111] Connection refused)"),
    ]
    assert "drift     []" in out
    assert "dockernetd_links 1.0" in out
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "dnd-demo-" not in namespaces
