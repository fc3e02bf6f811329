"""``dockernetd``: parse the flags, run init_networkdriver, serve the socket.

Exit codes: 0 after SIGTERM/SIGINT, 1 when the daemon cannot start (init
failed, socket busy), 2 for bad flags or config file.  Errors are one line
on stderr, never a traceback.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence

import trio

from .cli import parse_args
from .config import Config
from .driver import init_networkdriver
from .errors import ConfigError, StartupError
from .jobs import OneLineFormatter
from .kernel.worker import open_kernel_worker
from .proxy import ProxySupervisor
from .rpc import Dispatcher
from .server import Server, bind_unix_socket
from .service import Service

log = logging.getLogger("dockernetd")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = parse_args(argv)
    except ConfigError as exc:
        print(f"dockernetd: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    refused: list[BaseException] = []
    try:
        trio.run(run, config)
    except* StartupError as group:  # raised inside nurseries, so it arrives grouped
        refused = _leaves(group)
    for reason in refused:
        print(f"dockernetd: {reason}", file=sys.stderr)
    return 1 if refused else 0


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    return [
        leaf
        for exc in group.exceptions
        for leaf in (_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    ]


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("pyroute2", "asyncio"):  # their debug output is per netlink message
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))


SHUTDOWN_GRACE = 10.0


async def run(config: Config) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with open_kernel_worker() as kernel, trio.open_nursery() as proxies:
            if config.network_disabled:
                log.info("networking disabled (-b none): init_networkdriver skipped")
                driver = None
            else:
                driver = await init_networkdriver(config, kernel, ProxySupervisor(proxies))
            bound = bind_unix_socket(config.socket, config.group)
            try:
                server = Server(Dispatcher(Service(config, driver)))
                async with trio.open_nursery() as nursery:
                    await nursery.start(server.serve, bound.sock)
                    log.info("serving JSON-RPC on %s", config.socket)
                    async for signum in signals:
                        log.info("%s: shutting down", signal.Signals(signum).name)
                        break
                    await server.shutdown(SHUTDOWN_GRACE)
            finally:
                bound.close()
            proxies.cancel_scope.cancel()  # every proxy closes its sockets


if __name__ == "__main__":
    sys.exit(main())
