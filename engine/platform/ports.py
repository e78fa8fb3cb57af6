"""Checks that a TCP port is free before a server tries to bind it."""

from __future__ import annotations

import errno
import socket

from engine.platform.errors import WeftError


class PortInUse(WeftError):
    code = "PORT_IN_USE"


def require_free(host: str, port: int, setting: str) -> None:
    """Raise PortInUse, naming the port and the setting that changes it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"port {port} on {host} is already in use (set {setting} to use another)"
                ) from None
            raise


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
