"""JSON-RPC 2.0 dispatch: one request line in, one response line out.

The line is ours to read: strict UTF-8, strict JSON (RFC 8259: no ``NaN`` or
``Infinity``, no number that overflows a double, no lone surrogate), then the
request or each member of a batch is checked on its own, so that an invalid
member gets its own -32600 and every valid one still runs (JSON-RPC 2.0 §6).
Each valid request goes through jsonrpcserver's ``dispatch_request``, with one
change: its per-call ``inspect.signature().bind`` check is replaced by nothing,
since every method here takes any params and checks them itself against the
contract (:func:`api.check_params`, with messages that name the parameter);
that check was a quarter of a call's cost.  Every answer passes through
:func:`_shape`, so that ``error.data`` is always ``{"error": <name>, ...}`` and
no exception text ever reaches a client, and is written with ``allow_nan=False``,
so the daemon never sends a line that a strict parser rejects.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jsonrpcserver.async_dispatcher as _async_dispatcher
from jsonrpcserver import Error, Success
from jsonrpcserver.dispatcher import create_request, to_response
from jsonrpcserver.response import ErrorResponse, serialize_error, serialize_success
from jsonrpcserver.sentinels import NODATA, NOID
from oslash.either import Left, Right

from .api import METHODS, Method, check_params, openrpc_document
from .errors import PROTOCOL_ERROR_NAMES, ApiError, InvalidParams
from .handlers import Service
from .jobs import Job, Peer, run_job
from .metrics import RpcMetrics

log = logging.getLogger("dockernetd.rpc")

MAX_BATCH = 256  # requests in one batch
_REQUEST_KEYS = frozenset({"jsonrpc", "method", "id", "params"})
_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}\Z")


def _params_checked_by_the_method(request: Any, context: Any, method: Any) -> Any:
    return Right(method)


_async_dispatcher.validate_args = _params_checked_by_the_method  # type: ignore[attr-defined,assignment]


class _NotJson(ValueError):
    """Valid for Python's json module, but not JSON a strict parser accepts."""


def _reject_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _NotJson(f"number {text[:40]} is out of range")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def parse_line(line: bytes) -> Any:
    """The JSON document of a request line; ValueError (with a short reason) if it is not one."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _NotJson(f"not UTF-8: byte {exc.start} ({exc.reason})") from None
    doc = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    # An escaped lone surrogate ("\\ud800") is JSON's grammar, but no Unicode string.
    if "\\u" in text and _has_lone_surrogate(doc):
        raise _NotJson("a string holds a lone surrogate (not Unicode)")
    return doc


def request_problem(doc: Any) -> str | None:
    """Why ``doc`` is not a JSON-RPC 2.0 request object, or None if it is one."""
    if not isinstance(doc, dict):
        return f"a request is an object, not {_json_type(doc)}"
    if not doc.keys() <= _REQUEST_KEYS:
        return "a request has only the members jsonrpc, method, params and id"
    if doc.get("jsonrpc") != "2.0":
        return 'jsonrpc must be "2.0"'
    if not isinstance(doc.get("method"), str):
        return "method must be a string"
    if not isinstance(doc.get("params", []), list | dict):
        return "params must be an object or an array"
    request_id = doc.get("id")
    if not (request_id is None or _is_number_or_string(request_id)):
        return "id must be a string, a number or null"
    return None


def _is_number_or_string(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def protocol_error(code: int, message: str, detail: str, name: str | None = None) -> dict[str, Any]:
    """An error answer with no request id; ``data.error`` is the code's name unless given."""
    data = {"error": name or PROTOCOL_ERROR_NAMES[code], "detail": detail}
    return {"jsonrpc": "2.0", "error": {"code": code, "message": message, "data": data}, "id": None}


def _invalid_request(detail: str) -> dict[str, Any]:
    return protocol_error(-32600, "Invalid request", detail)


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


_INTERNAL_ERROR = {
    "jsonrpc": "2.0",
    "error": {"code": -32603, "message": "Internal error", "data": {"error": "internal_error"}},
    "id": None,
}


def response_line(response: Any) -> bytes:
    """One strict-JSON line; a value JSON cannot carry is a bug, answered as one."""
    try:
        text = json.dumps(response, separators=(",", ":"), allow_nan=False)
    except ValueError:
        log.exception("an answer is not JSON: %r", response)
        text = json.dumps(_INTERNAL_ERROR, separators=(",", ":"))
    return text.encode() + b"\n"


class Dispatcher:
    """Request lines in, response lines out; no sockets, so tests can drive it directly."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self._methods = {m.name: self._bind(m) for m in METHODS}
        self._methods["rpc.discover"] = self._discover
        self.metrics = RpcMetrics(frozenset(self._methods))

    async def handle_line(self, line: bytes, peer: Peer | None = None) -> bytes | None:
        """The response line (with its newline) to one request line, or None."""
        started = time.perf_counter()
        try:
            doc = parse_line(line)
        except ValueError as exc:  # json's message says where; ours what is not JSON
            self.metrics.observe(None, -32700, time.perf_counter() - started)
            return response_line(protocol_error(-32700, "Parse error", str(exc)[:200]))
        if not isinstance(doc, list):
            response = await self._answer(doc, peer, started)
            return None if response is None else response_line(response)
        if not 1 <= len(doc) <= MAX_BATCH:
            self.metrics.observe(None, -32600, time.perf_counter() - started)
            return response_line(_invalid_request(f"a batch holds 1 to {MAX_BATCH} requests"))
        answers = [await self._answer(member, peer, time.perf_counter()) for member in doc]
        responses = [a for a in answers if a is not None]
        return response_line(responses) if responses else None

    async def _answer(self, doc: Any, peer: Peer | None, started: float) -> dict[str, Any] | None:
        """The response to one request (a batch's member or a whole line); None: a notification."""
        problem = request_problem(doc)
        if problem is not None:
            self.metrics.observe(None, -32600, time.perf_counter() - started)
            return _invalid_request(problem)
        request = create_request(doc)
        _, result = await _async_dispatcher.dispatch_request(self._methods, peer, request)
        code = result._error.code if isinstance(result, Left) else None
        self.metrics.observe(request.method, code, time.perf_counter() - started)
        if request.id is NOID:
            return None
        return _shape(to_response(request, result))

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
