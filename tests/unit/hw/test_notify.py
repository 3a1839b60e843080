"""sd_notify: through systemd-python's ``systemd.daemon.notify`` when it imports, else the built-in
datagram client; the same messages either way, nothing at all without NOTIFY_SOCKET."""

from __future__ import annotations

import os
import socket
import sys
import types

import pytest

from hw.systemd_notify import Notifier


@pytest.fixture
def receiver(tmp_path, monkeypatch):
    """A bound notification socket named by NOTIFY_SOCKET in the process environment."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    yield sock
    sock.close()


def received(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096))
        except BlockingIOError:
            return out


class FakeSystemdDaemon:
    """``systemd.daemon`` as systemd-python has it: ``notify(status: str) -> bool``."""

    def __init__(self, answer: bool | Exception = True) -> None:
        self.calls: list[str] = []
        self.answer = answer

    def install(self, monkeypatch) -> None:
        package = types.ModuleType("systemd")
        daemon = types.ModuleType("systemd.daemon")
        daemon.notify = self.notify  # type: ignore[attr-defined]
        package.daemon = daemon  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "systemd", package)
        monkeypatch.setitem(sys.modules, "systemd.daemon", daemon)

    def notify(self, status: str, unset_environment: bool = False, pid: int = 0, fds: object = None) -> bool:
        self.calls.append(status)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def hide_systemd(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "systemd", None)  # import systemd -> ImportError
    monkeypatch.setitem(sys.modules, "systemd.daemon", None)


def test_systemd_python_is_used_when_it_imports(receiver, monkeypatch):
    fake = FakeSystemdDaemon()
    fake.install(monkeypatch)
    n = Notifier()
    assert n.backend == "systemd-python"
    assert n.ready("metering") is True
    assert n.watchdog() is True
    assert n.stopping() is True
    assert fake.calls == [f"READY=1\nSTATUS=metering\nMAINPID={os.getpid()}", "WATCHDOG=1", "STOPPING=1"]
    assert received(receiver) == []  # nothing went through the built-in client


@pytest.mark.parametrize("answer", [False, OSError(111, "refused")])
def test_systemd_python_refusal_is_false(receiver, monkeypatch, answer):
    FakeSystemdDaemon(answer).install(monkeypatch)
    assert Notifier().status("x") is False


def test_built_in_client_without_systemd_python(receiver, monkeypatch):
    hide_systemd(monkeypatch)
    n = Notifier()
    assert n.backend == "socket"
    assert n.ready("metering") is True
    assert n.status("5.0 kW") is True
    assert received(receiver) == [f"READY=1\nSTATUS=metering\nMAINPID={os.getpid()}".encode(), b"STATUS=5.0 kW"]


def test_same_messages_on_both_paths(receiver, monkeypatch):
    fake = FakeSystemdDaemon()
    fake.install(monkeypatch)
    Notifier().ready("up")
    hide_systemd(monkeypatch)
    Notifier().ready("up")
    assert [m.encode() for m in fake.calls] == received(receiver)


def test_the_other_systemd_package_is_not_taken_for_systemd_python(receiver, monkeypatch):
    fake = FakeSystemdDaemon()
    fake.install(monkeypatch)
    sys.modules["systemd.daemon"].Notification = object  # type: ignore[attr-defined]  # enum-based API
    n = Notifier()
    assert n.backend == "socket"
    assert n.watchdog() is True
    assert fake.calls == [] and received(receiver) == [b"WATCHDOG=1"]


def test_no_notify_socket_means_no_call(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    fake = FakeSystemdDaemon()
    fake.install(monkeypatch)
    n = Notifier()
    assert n.backend == "off" and not n.enabled
    assert n.ready("x") is False
    assert fake.calls == []


def test_explicit_environment_uses_the_built_in_client(tmp_path, monkeypatch):
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)
        fake = FakeSystemdDaemon()
        fake.install(monkeypatch)
        n = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "4000000"})
        assert n.watchdog_interval_s == 2.0
        assert n.watchdog() is True
        assert received(sock) == [b"WATCHDOG=1"] and fake.calls == []
