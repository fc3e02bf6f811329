"""The IPv6 half of the iptables backend: IPv6's Firewall, in a process of its own.

python-iptables cannot use an extension for both families in one process: libxtables
keeps one registry of loaded extensions, and MASQUERADE loaded for IPv4 is then "not
found" for IPv6 (python-iptables#135, #316; its author: "only use one address family
per process").  So the daemon's :class:`~dockernetd.kernel.firewall.Firewall` is IPv4's,
and the rules of the ``ip6`` tables go to a child process (``python -m
dockernetd.kernel.ip6tables``) that runs the same Firewall for IPv6 alone: the same
code, rules and operations, the same one commit per table.

The child is the kernel worker's, as the Firewall is: one request at a time, a JSON line
each way (``{"method": ..., "args": [...]}``, then ``{"result": ...}`` or ``{"error":
...}``).  A refusal comes back as FirewallError; if the child dies, the next call
starts another.  Costs ~0.1 ms per call over what the commit costs (spawning
ip6tables-restore per change cost ~2.5 ms in the daemon).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import IO, Any

from ..rules import BootPlan, Rule

#: How long a closed child may take to finish (its last commit of a big table) before it
#: is killed.
EXIT_TIMEOUT = 30.0


class Ip6tablesProcess:
    """The daemon's end: IPv6's Firewall methods, called by name (``call("apply", …)``)."""

    def __init__(self) -> None:
        self._child: subprocess.Popen[bytes] | None = None
        self._start()

    def _start(self) -> None:
        self._child = subprocess.Popen(
            (sys.executable, "-m", "dockernetd.kernel.ip6tables"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def call(self, method: str, *args: Any) -> Any:
        """Run ``Firewall.<method>(*args)`` in the child; FirewallError if it refuses."""
        from .firewall import FirewallError

        if self._child is None or self._child.poll() is not None:
            self._start()
        child = self._child
        assert child is not None and child.stdin is not None and child.stdout is not None
        request = {"method": method, "args": [_encode(arg) for arg in args]}
        try:
            child.stdin.write(json.dumps(request).encode() + b"\n")
            child.stdin.flush()
            line = child.stdout.readline()
        except OSError as exc:
            line = b""
            reason = exc.strerror
        else:
            reason = "it exited"
        if not line:
            self.close()
            raise FirewallError(f"ip6tables: the IPv6 firewall process failed: {reason}")
        answer = json.loads(line)
        if "error" in answer:
            raise FirewallError(answer["error"])
        return _decode_result(method, answer["result"])

    def close(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        assert child.stdin is not None and child.stdout is not None
        child.stdin.close()  # the child ends at the end of its input
        try:
            child.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        child.stdout.close()


def _encode(value: Any) -> Any:
    if isinstance(value, Rule):
        return [value.table, value.chain, list(value.args)]
    if isinstance(value, BootPlan):
        return {
            "absent": [_encode(r) for r in value.absent],
            "present": [_encode(r) for r in value.present],
            "jumps": [_encode(r) for r in value.jumps],
        }
    if isinstance(value, list | tuple):
        return [_encode(item) for item in value]
    return value


def _rule(encoded: list[Any]) -> Rule:
    table, chain, args = encoded
    return Rule(table, chain, tuple(args))


def _plan(encoded: dict[str, Any]) -> BootPlan:
    def rules(part: str) -> tuple[Rule, ...]:
        return tuple(_rule(r) for r in encoded[part])

    return BootPlan(absent=rules("absent"), present=rules("present"), jumps=rules("jumps"))


def _decode_result(method: str, result: Any) -> Any:
    """The child's answer as the Firewall's: reconcile and drift answer missing Rules (as
    iptables has them: what they stand for in nftables plays no part here) and lines."""
    if method not in ("reconcile", "drift"):
        return result
    missing, extra = result
    return [_rule(r) for r in missing], list(extra)


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """The child: IPv6's Firewall over ``requests`` and ``answers``, until end of input."""
    from .firewall import Firewall, FirewallError

    firewall = Firewall(family=6)
    try:
        for line in requests:
            request = json.loads(line)
            method, args = request["method"], request["args"]
            try:
                result = _call(firewall, method, args)
                answer: dict[str, Any] = {"result": _encode(result)}
            except FirewallError as exc:
                answer = {"error": f"ip6tables: {exc}"}
            answers.write(json.dumps(answer).encode() + b"\n")
            answers.flush()
    finally:
        firewall.close()


def _call(firewall: Any, method: str, args: list[Any]) -> Any:
    if method in ("setup", "teardown"):
        return getattr(firewall, method)(_plan(args[0]))
    if method == "drift":
        return firewall.drift(_plan(args[0]), [_rule(r) for r in args[1]])
    if method == "reconcile":
        return firewall.reconcile([_rule(r) for r in args[0]])
    if method == "apply":
        return firewall.apply([_rule(r) for r in args[0]], [_rule(r) for r in args[1]])
    if method == "changed_by_others":
        return firewall.changed_by_others()
    raise ValueError(f"no such method: {method}")


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
