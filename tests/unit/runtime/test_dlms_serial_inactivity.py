"""The RS-485 HDLC link's inactivity timer (meterd.runtime.dlms_serial.SerialLink on its pty):
armed at the session's deadline on the loop's clock; frames for another meter on the bus and
garbage never move it, a valid frame for this meter does."""

from __future__ import annotations

import asyncio
import os
import time
import tty

import pytest

from meterd.cosem.config import ServerConfig
from meterd.cosem.security import MemoryCounterStore
from meterd.cosem.server import build_session_factory
from meterd.proto.hdlc import Frame, HdlcParameters, LinkState, encode_address
from meterd.runtime.dlms_serial import SerialLink
from tests.dlms_fakes import FakeMeter, make_keyring

CLIENT = encode_address(16, None, 1)
OURS = encode_address(1, 0x23, 2)
OTHER = encode_address(1, 0x24, 2)
WAIT_S = 10.0


async def _until_read(link: SerialLink, total: int) -> None:
    """Let the link's reader take ``total`` octets (bounded wait on the count)."""
    deadline = time.monotonic() + WAIT_S
    while link.bytes_in < total and time.monotonic() < deadline:
        await asyncio.sleep(0.001)
    assert link.bytes_in == total


def test_only_frames_for_this_meter_restart_the_inactivity_timer() -> None:
    factory = build_session_factory(FakeMeter(), MemoryCounterStore(), make_keyring(),
                                    ServerConfig(link="hdlc", link_name="rs485", inactivity_timeout_s=120.0,
                                                 hdlc_params=HdlcParameters(physical_address=0x23)))

    async def scenario() -> None:
        link = await SerialLink(factory).start()
        assert link.slave_path is not None
        fd = os.open(link.slave_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(fd)
        try:
            sent = b""
            for data in (Frame(OTHER, CLIENT, 0x93).encode(), b"\x7e\xa7\xff\x03\x23"):
                os.write(fd, data)
                sent += data
                await _until_read(link, len(sent))
                assert link._idle is None  # nothing for this meter: no link, no timer
            os.write(fd, Frame(OURS, CLIENT, 0x93).encode())
            sent += Frame(OURS, CLIENT, 0x93).encode()
            await _until_read(link, len(sent))
            idle = link._idle
            assert idle is not None
            when = idle.when()
            assert when - asyncio.get_running_loop().time() == pytest.approx(120.0, abs=1.0)
            for data in (Frame(OTHER, CLIENT, 0x11).encode(), b"noise\x7e\xa0\x30\x03", Frame(OTHER, CLIENT, 0x53).encode()):
                os.write(fd, data)
                sent += data
                await _until_read(link, len(sent))
                assert link._idle is not None and link._idle.when() == when  # not extended
            session = link._session
            assert session is not None and session.link.state is LinkState.NRM  # type: ignore[attr-defined]
            link._idle._run()  # the time-out fires (no real 120 s wait)
            assert session.link.state is LinkState.NDM  # type: ignore[attr-defined]
        finally:
            os.close(fd)
            await link.close()

    asyncio.run(scenario())
