"""A small etcd v3 client: the JSON gateway (``/v3/…``) over HTTP/1.1, with httpx on trio.

Only what the cluster needs: grant and keep alive a lease, create a key if it is
absent (a transaction), read a prefix, watch it.  Keys and values travel base64
encoded, numbers as strings, and a field at its zero value is left out (gRPC's
JSON mapping): a failed transaction has no ``succeeded``, an expired lease no ``TTL``.

Every failure to talk to etcd (refused, timed out, an HTTP error, a body that is
not the gateway's) is an EtcdUnavailable naming the endpoint; the next call tries
the next endpoint.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

#: A request to a live etcd answers in milliseconds; a dead one is given up on quickly
#: so the daemon's state says so (the caller retries with backoff).
TIMEOUT = 2.0


class EtcdUnavailable(Exception):
    """etcd could not be asked (the text says which endpoint and why)."""


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    lease: int


@dataclass(frozen=True)
class WatchEvent:
    deleted: bool  # else put
    kv: KeyValue


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _prefix_end(prefix: str) -> str:
    """The range end that covers every key starting with ``prefix`` (its last byte + 1)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _kv(raw: dict[str, Any]) -> KeyValue:
    return KeyValue(
        base64.b64decode(raw["key"]).decode(errors="replace"),
        base64.b64decode(raw.get("value", "")),
        int(raw.get("lease", 0)),
    )


class EtcdClient:
    def __init__(self, urls: list[str]) -> None:
        self._urls = urls
        self._current = 0
        # plain HTTP (etcd://): no TLS context, whose CA bundle costs ~100 ms to load
        self._http = httpx.AsyncClient(timeout=TIMEOUT, verify=False)

    @property
    def url(self) -> str:
        return self._urls[self._current]

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = self.url
        try:
            answer = await self._http.post(f"{url}/v3/{path}", json=body)
            answer.raise_for_status()
            parsed: dict[str, Any] = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            self._current = (self._current + 1) % len(self._urls)  # the next one, next time
            raise EtcdUnavailable(f"etcd at {url}: {_reason(exc)}") from None
        return parsed

    async def grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; its id."""
        answer = await self._post("lease/grant", {"TTL": ttl})
        return int(answer["ID"])

    async def keep_alive(self, lease: int) -> int:
        """Renew ``lease``; the seconds it now has left, 0 if it has expired."""
        answer = await self._post("lease/keepalive", {"ID": str(lease)})
        return int(answer.get("result", {}).get("TTL", 0))

    async def create(self, key: str, value: str, lease: int) -> bool:
        """Put ``key`` bound to ``lease`` if no such key exists; whether it was put."""
        answer = await self._post(
            "kv/txn",
            {
                "compare": [{"key": _b64(key), "target": "CREATE", "create_revision": "0"}],
                "success": [
                    {"request_put": {"key": _b64(key), "value": _b64(value), "lease": str(lease)}}
                ],
            },
        )
        return bool(answer.get("succeeded", False))

    async def read_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under ``prefix``, and the store's revision they were read at."""
        answer = await self._post(
            "kv/range", {"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix))}
        )
        revision = int(answer["header"]["revision"])
        return [_kv(raw) for raw in answer.get("kvs", [])], revision

    async def watch_prefix(self, prefix: str, after: int) -> AsyncIterator[list[WatchEvent]]:
        """The changes under ``prefix`` after revision ``after``, a batch at a time, until
        the connection ends (EtcdUnavailable)."""
        url = self.url
        request = {
            "create_request": {
                "key": _b64(prefix),
                "range_end": _b64(_prefix_end(prefix)),
                "start_revision": str(after + 1),
            }
        }
        try:
            # no read timeout: a watch is quiet for as long as nothing changes
            timeout = httpx.Timeout(TIMEOUT, read=None)
            async with self._http.stream(
                "POST", f"{url}/v3/watch", json=request, timeout=timeout
            ) as answer:
                answer.raise_for_status()
                async for line in answer.aiter_lines():
                    if not line.strip():
                        continue
                    result = json.loads(line).get("result", {})
                    if result.get("canceled"):  # compacted past ``after``: read again
                        raise EtcdUnavailable(f"etcd at {url}: watch canceled")
                    events = [
                        WatchEvent(event.get("type") == "DELETE", _kv(event["kv"]))
                        for event in result.get("events", [])
                    ]
                    if events:
                        yield events
        except (httpx.HTTPError, ValueError) as exc:
            self._current = (self._current + 1) % len(self._urls)
            raise EtcdUnavailable(f"etcd at {url}: {_reason(exc)}") from None
        raise EtcdUnavailable(f"etcd at {url}: the watch ended")


def _reason(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return str(exc) or type(exc).__name__
