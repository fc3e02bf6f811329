"""The Unix socket: binding it safely, framing lines, one task per client.

Framing: one request (object or batch array) per ``\\n``-terminated line of
UTF-8 JSON; one response line back, none for notifications.  A line longer
than :data:`MAX_LINE` gets an invalid-request answer and is skipped up to its
newline, so a client cannot make the daemon buffer without bound.  Nothing a
client does (garbage, a huge line, a disconnect mid-request) escapes its own
connection task: an exception that escaped would take down every other
client with it (trio's ``serve_listeners`` re-raises it).
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import socket
import stat
import struct
from collections import Counter
from dataclasses import dataclass

import trio

from .errors import StartupError
from .jobs import Peer
from .rpc import Dispatcher, protocol_error, response_line

log = logging.getLogger("dockernetd.server")

MAX_LINE = 1 << 20  # 1 MiB: the longest request line the daemon reads
MAX_CONNECTIONS = 4096  # open at once, all clients together
MAX_PER_PROCESS = 256  # open at once by one client process (SO_PEERCRED pid)
_RECEIVE_SIZE = 65536


_TOO_MANY = response_line(
    protocol_error(
        -32000,
        "Server error",
        f"at most {MAX_PER_PROCESS} connections per process, {MAX_CONNECTIONS} in all",
        name="too_many_connections",
    )
)
_TOO_LONG = response_line(
    protocol_error(-32600, "Invalid request", f"line longer than {MAX_LINE} bytes")
)


@dataclass
class BoundSocket:
    sock: socket.socket
    path: str
    inode: int | None  # of the file we bound, to tell it from a successor's; None: not ours

    def close(self) -> None:
        """Close the socket and unlink its file, if we made it and it is still ours."""
        self.sock.close()
        with contextlib.suppress(OSError):
            if self.inode is not None and os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)


def bind_unix_socket(path: str, group: str, mode: int = 0o660) -> BoundSocket:
    """A listening socket at ``path``, mode ``mode``, group ``group`` (or the caller's).

    A stale socket file (nobody accepting) is replaced; a live one means another
    daemon is serving and is refused.
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    gid = _group_id(group) if group else -1
    _remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # nobody but us until the group and mode are right
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot bind {path}: {exc.strerror}") from None
    finally:
        os.umask(old_umask)
    try:
        if gid != -1:
            os.chown(path, -1, gid)
        os.chmod(path, mode)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot set the mode of {path}: {exc.strerror}") from None
    sock.listen(1024)
    return BoundSocket(sock, path, os.stat(path).st_ino)


def _group_id(group: str) -> int:
    try:
        return int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise StartupError(f"unknown group {group!r} for the socket") from None


def _remove_stale(path: str) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise StartupError(f"{path} exists and is not a socket; not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # stale: left by a daemon that is gone
        log.info("replaced stale socket %s", path)
    else:
        raise StartupError(f"another daemon is already serving on {path}")
    finally:
        probe.close()


def peer_of(sock: trio.socket.SocketType) -> Peer | None:
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(pid=pid, uid=uid, gid=gid)


class Server:
    """Serves one listening socket; :meth:`shutdown` drains it gracefully.

    Shutdown stops accepting, lets every request already read run to its answer,
    and closes connections that are idle; after ``grace`` seconds whatever is
    left is cancelled.
    """

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._metrics = dispatcher.metrics
        self._accepting = trio.CancelScope()
        self._connections: trio.Nursery | None = None
        self._idle: set[trio.CancelScope] = set()
        self._closing = False
        self._stopped = trio.Event()
        self._per_process: Counter[int] = Counter()

    async def serve(
        self,
        sock: socket.socket,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        try:
            async with trio.open_nursery() as connections:
                self._connections = connections
                with self._accepting:
                    await trio.serve_listeners(
                        self._connection,
                        [listener],
                        handler_nursery=connections,
                        task_status=_Started(task_status),
                    )
        finally:
            self._stopped.set()

    async def shutdown(self, grace: float) -> None:
        """Stop accepting; finish in-flight requests; close idle connections; return when done."""
        self._closing = True
        self._accepting.cancel()
        for scope in list(self._idle):
            scope.cancel()
        if self._connections is not None:
            self._connections.cancel_scope.deadline = trio.current_time() + grace
        await self._stopped.wait()

    async def _connection(self, stream: trio.SocketStream) -> None:
        peer = peer_of(stream.socket)
        owner = peer.pid if peer else -1
        if (
            self._metrics.open_connections >= MAX_CONNECTIONS
            or self._per_process[owner] >= MAX_PER_PROCESS
        ):
            log.warning("refused a connection from %s: too many connections", peer)
            self._metrics.refused_connections += 1
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                async with stream:
                    await stream.send_all(_TOO_MANY)
            return
        self._metrics.open_connections += 1
        self._per_process[owner] += 1
        try:
            async with stream:
                await self._exchange(stream, peer)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away; its unanswered requests die with it
        except Exception:
            log.exception("connection from %s failed", peer)
        finally:
            self._metrics.open_connections -= 1
            self._per_process[owner] -= 1
            if not self._per_process[owner]:
                del self._per_process[owner]

    async def _receive(self, stream: trio.SocketStream) -> bytes:
        """The next bytes from the client, or b"" at EOF or once shutting down."""
        if self._closing:
            return b""
        with trio.CancelScope() as idle:
            self._idle.add(idle)
            try:
                return await stream.receive_some(_RECEIVE_SIZE)
            finally:
                self._idle.discard(idle)
        return b""  # cancelled by shutdown while idle

    async def _exchange(self, stream: trio.SocketStream, peer: Peer | None) -> None:
        buffer = bytearray()
        scanned = 0  # bytes of buffer already known to hold no newline
        skipping = False  # inside a line that was too long
        while data := await self._receive(stream):
            buffer += data
            out = []
            while (newline := buffer.find(b"\n", scanned)) >= 0:
                line = bytes(buffer[:newline])
                del buffer[: newline + 1]
                scanned = 0
                if skipping:
                    skipping = False
                elif line.strip():
                    response = await self._dispatcher.handle_line(line, peer)
                    if response:
                        out.append(response)
            scanned = len(buffer)
            if len(buffer) > MAX_LINE:
                if not skipping:
                    out.append(_TOO_LONG)
                    self._metrics.observe(None, -32600, 0.0)
                    skipping = True
                buffer.clear()
                scanned = 0
            if out:
                await stream.send_all(b"".join(out))


class _Started:
    """serve_listeners reports its listeners; our callers only need to know it started."""

    def __init__(self, task_status: trio.TaskStatus[None]) -> None:
        self._task_status = task_status

    def started(self, value: object = None) -> None:
        self._task_status.started()
