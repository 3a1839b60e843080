"""The meter's optical port as the dlms feature opens it (simulated meter, a pty): the addressed
sign-on ``/?<serial>!`` answered no sooner than 200 ms after it, another address not at all, and
the mode C readout of the meter's own registers."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
import tty

from meterd.app.features import dlms as dlms_feature
from meterd.proto.iec62056_21 import bcc
from tests.simmeter import SimMeter

WAIT_S = 5.0


async def _read_until(fd: int, done) -> bytes:  # type: ignore[no-untyped-def]
    data = b""
    deadline = time.monotonic() + WAIT_S
    while not done(data) and time.monotonic() < deadline:
        try:
            data += os.read(fd, 4096)
        except BlockingIOError:
            await asyncio.sleep(0.005)
    assert done(data), data
    return data


def test_optical_port_answers_its_serial_after_the_reaction_time_and_reads_out_in_mode_c(tmp_path):
    meter = SimMeter(tmp_path / "state")
    try:
        cfg = meter.daemon.cfg
        dlms = dataclasses.replace(cfg.dlms, tcp_host="", hdlc_port="", optical_port="pty")
        ctx = dataclasses.replace(meter.daemon.context(), cfg=dataclasses.replace(cfg, dlms=dlms))
        serial = ctx.meter.identity.serial

        async def scenario() -> None:
            loop = asyncio.get_running_loop()
            await dlms_feature.start(ctx)
            (link,) = ctx.links
            fd = os.open(link.slave_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            tty.setraw(fd)
            try:
                os.write(fd, b"/?XYZ0000000001!\r\n")  # another meter's address
                sent = loop.time()
                os.write(fd, f"/?{serial}!\r\n".encode())
                ident = await _read_until(fd, lambda d: d.endswith(b"\r\n"))
                assert loop.time() - sent >= 0.2
                assert ident == f"/{cfg.meter.manufacturer_flag}5\\2{serial[-16:]}\r\n".encode()  # once
                os.write(fd, b"\x06050\r\n")
                message = await _read_until(fd, lambda d: len(d) >= 2 and d[-2] == 0x03)
                assert message[0] == 0x02 and message[-1] == bcc(message[1:-1])
                lines = message[1:-2].decode("ascii").split("\r\n")
                assert lines[0] == f"C.1.0({serial})" and lines[-2:] == ["!", ""]
                assert any(line.startswith("1.8.0(") and line.endswith("*kWh)") for line in lines)
            finally:
                os.close(fd)
                await link.close()

        asyncio.run(scenario())
    finally:
        meter.close()
