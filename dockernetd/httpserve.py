"""HTTP/1.1 for the daemon's two HTTP faces: Prometheus metrics and Docker's plugin API.

h11 does the protocol (sans-IO: it parses bytes into events and events into
bytes); this module moves the bytes over trio streams, TCP or Unix.  A request
is read whole, body included (up to ``max_body``), and handed to an async
``handler(request, body)`` that returns the status, headers and body of the
answer.  Connections are kept alive; an idle one is closed after
``IDLE_TIMEOUT``, and beyond ``max_connections`` at once new ones are closed
unanswered.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

import h11
import trio

log = logging.getLogger("dockernetd.http")

IDLE_TIMEOUT = 30.0  # seconds a connection may wait for (the rest of) a request
_RECEIVE_SIZE = 16384
TEXT = ("Content-Type", "text/plain; charset=utf-8")


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


Handler = Callable[[h11.Request, bytes], Awaitable[Answer]]


class _TooLarge(Exception):
    pass


class HttpServer:
    """Serves ``handler`` on listeners; ``name`` is what its log lines say it is."""

    def __init__(
        self, handler: Handler, *, name: str, max_connections: int = 64, max_body: int = 1 << 20
    ) -> None:
        self._handler = handler
        self._name = name
        self._max_connections = max_connections
        self._max_body = max_body
        self._open = 0

    async def serve(
        self,
        listeners: Sequence[trio.abc.Listener[trio.abc.Stream]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._connection, listeners)
            task_status.started()

    async def _connection(self, stream: trio.abc.Stream) -> None:
        if self._open >= self._max_connections:
            await stream.aclose()
            return
        self._open += 1
        try:
            async with stream:
                await self._exchange(stream, h11.Connection(h11.SERVER))
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
            pass  # the client went away, or the exchange cannot go on
        except Exception:
            log.exception("%s connection failed", self._name)
        finally:
            self._open -= 1

    async def _exchange(self, stream: trio.abc.Stream, conn: h11.Connection) -> None:
        while True:
            try:
                received = await self._next_request(stream, conn)
            except h11.RemoteProtocolError as exc:
                await _send(stream, conn, Answer(exc.error_status_hint, [TEXT], b"bad request\n"))
                return
            except _TooLarge:
                too_large = f"request body over {self._max_body} bytes\n".encode()
                await _send(stream, conn, Answer(413, [TEXT, ("Connection", "close")], too_large))
                return
            if received is None:
                return
            request, body = received
            answer = await self._handler(request, body)
            await _send(stream, conn, answer, head=request.method == b"HEAD")
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return  # the request asked to close
            conn.start_next_cycle()

    async def _next_request(
        self, stream: trio.abc.Stream, conn: h11.Connection
    ) -> tuple[h11.Request, bytes] | None:
        """The next request and its body; None at EOF or after the idle timeout."""
        request = None
        body = bytearray()
        with trio.move_on_after(IDLE_TIMEOUT):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(bytes(await stream.receive_some(_RECEIVE_SIZE)))
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > self._max_body:
                        raise _TooLarge()
                elif isinstance(event, h11.EndOfMessage):
                    assert request is not None
                    return request, bytes(body)
                elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    return None
        return None


async def _send(
    stream: trio.abc.Stream, conn: h11.Connection, answer: Answer, *, head: bool = False
) -> None:
    length = ("Content-Length", str(len(answer.body)))
    events = [
        h11.Response(
            status_code=answer.status,
            headers=[*answer.headers, length],
            reason=HTTPStatus(answer.status).phrase.encode(),
        ),
        *([] if head else [h11.Data(data=answer.body)]),  # HEAD: the length, not the body
        h11.EndOfMessage(),
    ]
    await stream.send_all(b"".join(conn.send(event) or b"" for event in events))
