"""A head end's push listener for tests: dlms-cosem parses what the meter pushes.

It listens on loopback (a free port chosen by the OS), reads IEC 62056-47 wrapper frames
(dlms-cosem's ``WrapperHeader``), opens general-glo-ciphering with the test keys (dlms-cosem's
``GeneralGlobalCipher`` and ``decrypt``, refusing an invocation counter that does not grow),
parses the ``DataNotification`` and its body (dlms-cosem's A-XDR ``DlmsDataParser``). None of
the meter's code is used to read what the meter sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
from dataclasses import dataclass, replace
from typing import Any

from dlms_cosem.dlms_data import DlmsDataParser
from dlms_cosem.protocol.wrappers import WrapperHeader
from dlms_cosem.protocol.xdlms.data_notification import DataNotification
from dlms_cosem.protocol.xdlms.general_global_cipher import GeneralGlobalCipher
from dlms_cosem.security import decrypt


@dataclass(frozen=True)
class Received:
    """One DataNotification as the head end saw it."""

    invoke_id: int
    prioritized: bool
    date_time: _dt.datetime | None
    values: list[Any]
    source_wport: int
    destination_wport: int
    system_title: bytes | None
    invocation_counter: int | None
    octets: int
    source: str = ""
    """The IPv4 address the meter sent from (which medium carried the message)."""


class PushListener:
    """TCP push listener on 127.0.0.1; ``keys`` = (global unicast key, authentication key) or
    None for plain notifications."""

    def __init__(self, keys: tuple[bytes, bytes] | None = None) -> None:
        self.keys = keys
        self.received: list[Received] = []
        self.errors: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._arrived = asyncio.Event()
        self._last_ic: dict[bytes, int] = {}
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, port: int = 0) -> int:
        """Listen (``port`` 0: a free one); the port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        """Stop listening (connections refused until :meth:`start` again)."""
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        """Wait until ``count`` notifications arrived (bounded); the notifications."""
        async def enough() -> None:
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()
        await asyncio.wait_for(enough(), timeout_s)
        return self.received

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        peer = writer.get_extra_info("peername")
        source = str(peer[0]) if peer else ""
        try:
            while True:
                try:
                    head = WrapperHeader.from_bytes(await reader.readexactly(8))
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                apdu = await reader.readexactly(head.length)
                try:
                    self.received.append(replace(self._parse(head, apdu), source=source))
                except Exception as exc:  # noqa: BLE001 - the test reads the error
                    self.errors.append(repr(exc))
                self._arrived.set()
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    def _parse(self, head: WrapperHeader, apdu: bytes) -> Received:
        title = ic = None
        plain = apdu
        if apdu[0] == GeneralGlobalCipher.TAG:
            if self.keys is None:
                raise ValueError("ciphered notification and no keys")
            ciphered = GeneralGlobalCipher.from_bytes(apdu)
            assert ciphered.system_title is not None
            title, ic = bytes(ciphered.system_title), ciphered.invocation_counter
            if ic <= self._last_ic.get(title, -1):
                raise ValueError(f"invocation counter {ic} replayed")
            self._last_ic[title] = ic
            plain = decrypt(ciphered.security_control, title, ic, self.keys[0], ciphered.ciphered_text, self.keys[1])
        note = DataNotification.from_bytes(plain)
        values = DlmsDataParser().parse(note.body, limit=1)
        return Received(note.long_invoke_id_and_priority.long_invoke_id, note.long_invoke_id_and_priority.prioritized,
                        note.date_time, values[0] if values else [], head.source_wport, head.destination_wport,
                        title, ic, 8 + len(apdu))
