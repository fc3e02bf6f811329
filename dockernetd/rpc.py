"""JSON-RPC 2.0 dispatch: one request line in, one response line out.

Dispatch is jsonrpcserver's, with four changes: its ``asyncio.gather`` (which
silently fails under trio) is replaced by a sequential gather; its per-call
``inspect.signature().bind`` check by nothing, since every method here takes
any params and checks them itself against the contract (:func:`api.check_params`,
with messages that name the parameter) — that check was a quarter of a call's
cost; the jsonschema request validator by an equivalent check that costs far
less; and every answer passes through :func:`_shape`, so that
``error.data`` is always ``{"error": <name>, ...}`` and no exception text ever
reaches a client.
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Awaitable, Callable
from typing import Any

import jsonrpcserver.async_dispatcher as _async_dispatcher
from jsonrpcserver import Error, Success
from jsonrpcserver.async_main import dispatch_to_response
from jsonrpcserver.response import ErrorResponse, serialize_error, serialize_success
from jsonrpcserver.sentinels import NODATA
from oslash.either import Left, Right

from .api import METHODS, Method, check_params, openrpc_document
from .errors import PROTOCOL_ERROR_NAMES, ApiError, InvalidParams
from .jobs import Job, Peer, run_job
from .service import Service

MAX_BATCH = 256  # requests in one batch
_REQUEST_KEYS = frozenset({"jsonrpc", "method", "id", "params"})
_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}\Z")


async def _sequential_gather(*awaitables: Awaitable[Any]) -> list[Any]:
    return [await a for a in awaitables]


# The module's only asyncio use; replaced, as documented in ../shared/docs/dependencies.md.
_async_dispatcher.asyncio = types.SimpleNamespace(gather=_sequential_gather)  # type: ignore[attr-defined,assignment]


def _params_checked_by_the_method(request: Any, context: Any, method: Any) -> Any:
    return Right(method)


_async_dispatcher.validate_args = _params_checked_by_the_method  # type: ignore[attr-defined,assignment]


def _validate_request(doc: Any) -> Any:
    """The JSON-RPC 2.0 request schema jsonrpcserver ships, as plain Python."""
    requests = doc if isinstance(doc, list) else [doc]
    if isinstance(doc, list) and not 1 <= len(doc) <= MAX_BATCH:
        raise ValueError(f"a batch holds 1 to {MAX_BATCH} requests")
    for r in requests:
        if not (
            isinstance(r, dict)
            and r.keys() <= _REQUEST_KEYS
            and r.get("jsonrpc") == "2.0"
            and isinstance(r.get("method"), str)
            and isinstance(r.get("params", []), list | dict)
            and _valid_id(r.get("id"))
        ):
            raise ValueError("invalid request")
    return doc


def _valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, str | int | float) and not isinstance(value, bool))


def _shape(response: Any) -> dict[str, Any]:
    """A response as a dict, with ``error.data`` in our shape and nothing leaked."""
    if not isinstance(response, Left):
        return serialize_success(response._value)
    err = response._error
    data = err.data
    if not (isinstance(data, dict) and "error" in data):  # made by jsonrpcserver itself
        name = PROTOCOL_ERROR_NAMES.get(err.code, "server_error")
        if err.code in (-32603, -32000) or data is NODATA:
            data = {"error": name}
        elif err.code == -32601:
            data = {"error": name, "method": str(data)[:200]}
        else:
            data = {"error": name, "detail": str(data)[:200]}
    return serialize_error(ErrorResponse(err.code, err.message, data, err.id))


class Dispatcher:
    """Request lines in, response lines out; no sockets, so tests can drive it directly."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self._methods = {m.name: self._bind(m) for m in METHODS}
        self._methods["rpc.discover"] = self._discover

    async def handle_line(self, line: bytes, peer: Peer | None = None) -> bytes | None:
        """The response line (with its newline) to one request line, or None."""
        response = await dispatch_to_response(
            line.decode("utf-8", "replace"),  # bad bytes fail param checks, not the daemon
            self._methods,
            context=peer,
            validator=_validate_request,
            post_process=_shape,
        )
        if response is None:
            return None
        return json.dumps(response, separators=(",", ":")).encode() + b"\n"

    def _bind(self, method: Method) -> Callable[..., Awaitable[Any]]:
        async def call(peer: Peer | None, *args: Any, **params: Any) -> Any:
            container_id = params.get("id") if method.takes_container else None
            if not (isinstance(container_id, str) and _SAFE_ID.match(container_id)):
                container_id = ""  # never log a client string that could forge a log line
            try:
                with run_job(Job(method.name, container_id, peer), query=method.query):
                    if args:
                        raise InvalidParams(_BY_NAME)
                    result = await self._service.run(method, check_params(method, params))
            except ApiError as exc:
                return Error(exc.code, exc.message, exc.data())
            except Exception:  # logged with its traceback by run_job; the client learns nothing
                return Error(-32603, "Internal error", {"error": "internal_error"})
            return Success(result)

        return call

    async def _discover(self, peer: Peer | None, *args: Any, **params: Any) -> Any:
        with run_job(Job("rpc.discover", peer=peer), query=True):
            if args or params:
                error = InvalidParams("Bad parameter: rpc.discover takes no params")
                return Error(error.code, error.message, error.data())
            return Success(openrpc_document())


_BY_NAME = "Bad parameter: params must be given by name (a JSON object)"
