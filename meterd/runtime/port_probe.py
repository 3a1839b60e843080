"""A TCP port checked before use: can it be bound, and who listens on it when it cannot.

:func:`tcp_port_problem` binds a socket to the address the DLMS wrapper would listen on (with
``SO_REUSEADDR``, as asyncio's server does) and closes it at once, without listening: nothing
can connect in between. :func:`listens_on` tells from ``/proc`` whether a process has a
listening socket on a port (so a check run beside the running meter recognises the meter's own).
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


def tcp_port_problem(host: str, port: int) -> str | None:
    """None when ``host``:``port`` can be bound now, else why not (one phrase)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"host {host!r} does not resolve: {exc.strerror}"
    for family, kind, proto, _name, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use"
            if exc.errno == errno.EACCES:
                return f"port {port} needs privileges this user does not have"
            if exc.errno == errno.EADDRNOTAVAIL:
                return f"{host} is not an address of this host"
            return f"cannot bind {host}:{port}: {exc.strerror}"
        finally:
            sock.close()
    return None


def _socket_inodes(pid: int, proc: Path) -> set[str] | None:
    try:
        names = os.listdir(proc / str(pid) / "fd")
    except OSError:
        return None
    inodes = set()
    for name in names:
        try:
            target = os.readlink(proc / str(pid) / "fd" / name)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def listens_on(pid: int, port: int, proc: Path = Path("/proc")) -> bool | None:
    """True when process ``pid`` has a listening TCP socket on ``port``, False when it has none,
    None when ``/proc`` does not tell (another user's process, no ``/proc``)."""
    inodes = _socket_inodes(pid, proc)
    if inodes is None:
        return None
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                return True
    return False
