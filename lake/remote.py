"""Reachability of a remote Spark Connect server, checked before the client connects.

The PySpark Connect client retries an unreachable server for minutes with no output (measured: no exit after
150 s for `sc://127.0.0.1:9`), and waits forever on a server that accepts the connection but never answers. So
before the client starts, one deadline (`connect_timeout_s`, DG_CONNECT_TIMEOUT_S, default 60 s) covers the TCP
connect AND the server's HTTP/2 greeting (the SETTINGS frame every gRPC server sends first). Either failing is one
line naming host and port, never the token, and the setting to change.
"""

from __future__ import annotations

import socket
import ssl
import time
from urllib.parse import urlsplit

from lake.errors import InputError, ServiceUnreachableError

DEFAULT_SPARK_CONNECT_PORT = 15002
# RFC 9113 section 3.4: the client connection preface, then an empty SETTINGS frame (length 0, type 4, stream 0)
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
HTTP2_SETTINGS_FRAME_TYPE = 4


def spark_connect_address(url: str) -> tuple[str, int]:
    """(host, port) of an `sc://host[:port][/;params]` URL."""
    netloc = urlsplit(url.replace("sc://", "http://", 1)).netloc.split(";", 1)[0]  # drop ;token=... params
    address = urlsplit(f"http://{netloc}")
    try:
        port = address.port
    except ValueError:
        raise InputError(f"Spark Connect URL has a bad port: sc://{address.hostname}") from None
    return address.hostname or "", port or DEFAULT_SPARK_CONNECT_PORT


def _uses_tls(url: str) -> bool:
    params = url.split(";")[1:]
    return any(p.strip().lower() in ("use_ssl=true", "use_ssl=1") for p in params)


def _greeting(connection: socket.socket, host: str, tls: bool, deadline: float) -> bytes:
    """The first frame header the server sends after our HTTP/2 preface (TLS with ALPN h2 when asked for)."""
    if tls:
        context = ssl.create_default_context()
        context.set_alpn_protocols(["h2"])
        connection = context.wrap_socket(connection, server_hostname=host)
    connection.sendall(HTTP2_PREFACE)
    received = b""
    while len(received) < 9:
        connection.settimeout(max(deadline - time.monotonic(), 0.001))
        chunk = connection.recv(9 - len(received))
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        received += chunk
    return received


def require_reachable(url: str, timeout_s: float) -> None:
    """Raise a one-line EngineUnreachableError unless the server accepts a connection and greets as an HTTP/2
    (gRPC) server within `timeout_s` in all."""
    host, port = spark_connect_address(url)
    deadline = time.monotonic() + timeout_s
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as connection:
            header = _greeting(connection, host, _uses_tls(url), deadline)
        if header[3] == HTTP2_SETTINGS_FRAME_TYPE:
            return
        problem = "it answered, but not as a Spark Connect (gRPC) server"
    except TimeoutError:
        problem = f"no answer within {timeout_s:g} s"
    except ssl.SSLError as exc:
        problem = f"TLS failed: {exc.reason or type(exc).__name__}"
    except OSError as exc:
        problem = exc.strerror or str(exc) or type(exc).__name__
    raise EngineUnreachableError(
        f"cannot reach the Spark Connect server at {host}:{port} ({problem}); check "
        "--remote / DG_SPARK_REMOTE and that the server is up "
        "(DG_CONNECT_TIMEOUT_S sets how long to wait)"
    )


class EngineUnreachableError(ServiceUnreachableError):
    """The configured Spark Connect server does not accept connections or does not answer in time."""
