"""A small blocking client for the daemon's socket, for scripts, tests and dockernetctl.

    with Client("/run/dockernetd/dockernetd.sock") as c:
        iface = c.call("allocate_interface", id="web1")

One connection per Client; not to be shared between threads.  It imports only the
standard library: the CNI plugin, exec'd for every container, uses it.
"""

from __future__ import annotations

import itertools
import json
import socket

TYPE_CHECKING = False  # not typing's: the CNI plugin imports this module (see cni.py)
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any

#: Where the daemon listens unless told otherwise (config.py and the units use this).
DEFAULT_SOCKET = "/run/dockernetd/dockernetd.sock"


class RpcError(Exception):
    """The daemon answered with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message
        self.data = data

    @property
    def name(self) -> str:
        return self.data.get("error", "") if isinstance(self.data, dict) else ""


class Client:
    def __init__(self, path: str = DEFAULT_SOCKET, timeout: float | None = 30.0) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(path)
        except OSError:
            self._sock.close()
            raise
        self._reader = self._sock.makefile("rb")
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> Any:
        """Call ``method`` with named params; its result, or RpcError."""
        request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": next(self._ids)}
        if params:
            request["params"] = params
        response = self.send_line(json.dumps(request).encode())
        if response is None:
            raise ConnectionError("the daemon closed the connection")
        if "error" in response:
            err = response["error"]
            raise RpcError(err["code"], err["message"], err.get("data"))
        return response["result"]

    def send_line(self, line: bytes, *, expect_reply: bool = True) -> Any:
        """Send one raw request line; the decoded response line (None at EOF)."""
        self._sock.sendall(line + b"\n")
        if not expect_reply:
            return None
        reply = self._reader.readline()
        return json.loads(reply) if reply else None

    def close(self) -> None:
        self._reader.close()
        self._sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
