"""Noise on the simulated RS-485 HDLC line (the pty's :class:`~hw.serial_link.CableFaults`):
garbled frames are dropped by the HDLC layer's own HCS/FCS checks and counted; a clean line
answers every SNRM. Which bytes are garbled depends only on the seed (one generator per
direction), so the counts are the same on every run."""

from __future__ import annotations

import asyncio
import os
import time
import tty

from meterd.cosem.config import ServerConfig
from meterd.cosem.security import MemoryCounterStore
from meterd.cosem.server import build_session_factory
from meterd.proto.hdlc import FLAG, Frame
from meterd.runtime.dlms_serial import SerialLink
from tests.dlms_fakes import FakeMeter, make_keyring

SNRM = Frame(b"\x03", b"\x21", 0x93).encode()  # from client 16 to the management logical device
FRAMES = 40
WAIT_S = 30.0


async def served(noise: float) -> tuple[int, int, int]:
    """(UA frames answered, frames dropped, bytes garbled) for FRAMES SNRMs sent at once."""
    factory = build_session_factory(FakeMeter(), MemoryCounterStore(), make_keyring(),
                                    ServerConfig(link="hdlc", link_name="rs485"))
    link = await SerialLink(factory).start()
    assert link.faults is not None and link.slave_path is not None
    link.faults.corrupt_rate = noise
    fd = os.open(link.slave_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd)
    try:
        os.write(fd, SNRM * FRAMES)
        deadline = time.monotonic() + WAIT_S
        while link.bytes_in < len(SNRM) * FRAMES and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert link.bytes_in == len(SNRM) * FRAMES
        answers = b""
        while len(answers) < link.bytes_out and time.monotonic() < deadline:  # all the meter wrote
            try:
                answers += os.read(fd, 65536)
            except BlockingIOError:
                await asyncio.sleep(0.01)
        assert len(answers) == link.bytes_out
        ua = answers.count(bytes((FLAG,)) + bytes.fromhex("a0"))
        return ua, link.dropped_frames, link.faults.corrupted
    finally:
        os.close(fd)
        await link.close()


def test_a_clean_line_answers_every_frame() -> None:
    answered, dropped, garbled = asyncio.run(served(0.0))
    assert (answered, dropped, garbled) == (FRAMES, 0, 0)


def test_noise_garbles_bytes_and_the_hdlc_layer_drops_the_frames() -> None:
    answered, dropped, garbled = asyncio.run(served(0.05))
    assert garbled > 0
    assert dropped > 0
    assert answered < FRAMES
