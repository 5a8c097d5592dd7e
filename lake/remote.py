"""Reachability of a remote Spark Connect server, checked before the client connects.

The PySpark Connect client retries an unreachable server for minutes with no output (measured: no exit
after 150 s for `sc://127.0.0.1:9`). A TCP connect with a timeout first turns that into one clear line within
`connect_timeout_s` (DG_CONNECT_TIMEOUT_S, default 60 s) naming host and port, never the token.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from lake.errors import InputError

DEFAULT_SPARK_CONNECT_PORT = 15002


def spark_connect_address(url: str) -> tuple[str, int]:
    """(host, port) of an `sc://host[:port][/;params]` URL."""
    netloc = urlsplit(url.replace("sc://", "http://", 1)).netloc.split(";", 1)[0]  # drop ;token=... params
    address = urlsplit(f"http://{netloc}")
    try:
        port = address.port
    except ValueError:
        raise InputError(f"Spark Connect URL has a bad port: sc://{address.hostname}") from None
    return address.hostname or "", port or DEFAULT_SPARK_CONNECT_PORT


def require_reachable(url: str, timeout_s: float) -> None:
    """Raise a one-line EngineUnreachable (InputError) unless a TCP connection to the server opens in time."""
    host, port = spark_connect_address(url)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except TimeoutError:
        problem = f"no answer within {timeout_s:g} s"
    except OSError as exc:
        problem = exc.strerror or type(exc).__name__
    raise EngineUnreachableError(
        f"cannot reach the Spark Connect server at {host}:{port} ({problem}); check "
        "--remote / DG_SPARK_REMOTE and that the server is up "
        "(DG_CONNECT_TIMEOUT_S sets how long to wait)"
    )


class EngineUnreachableError(InputError):
    """The configured Spark Connect server does not accept connections."""
