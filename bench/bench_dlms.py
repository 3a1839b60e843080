"""DLMS server benchmark: read a 60-day, 15-minute, 8-channel load profile (5760 rows).

Links: TCP wrapper (LLS, HLS-GMAC; dlms-cosem client) and HDLC on a pty with max info field 128
(dlms-cosem, which never negotiates) and 2030 (gurux client). The server uses the real SQLite
invocation-counter store (``DlmsSecurityStore``, synchronous=FULL) in a temporary directory.
Prints wall time, server CPU (the server's event-loop thread), bytes on the wire, and for HDLC:

* line time: the bytes both ways at 9600 Bd, 10 bits per octet (start, 8 data, stop);
* framing overhead ratio: bytes on the wire / bytes of the bare A-XDR buffer (HDLC, APDU and
  ciphering headers, RR/REQUEST-next round trips);
* server-added time / line time: the server's CPU time during the transfer (what the meter adds
  to a real 9600 Bd exchange, window 1) over the line time, PASS when at most 10 %.

Run from the repository root: ``.venv/bin/python bench/bench_dlms.py``.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import structlog  # noqa: E402
from dlms_cosem import cosem, enumerations  # noqa: E402
from dlms_cosem.client import DlmsClient  # noqa: E402
from dlms_cosem.io import BlockingTcpIO, TcpTransport  # noqa: E402
from dlms_cosem.security import HighLevelSecurityGmacAuthentication, LowLevelSecurityAuthentication  # noqa: E402
from gurux_dlms.objects import GXDLMSProfileGeneric  # noqa: E402

from meterd.cosem.config import ServerConfig  # noqa: E402
from meterd.cosem.profile import ProfileReader  # noqa: E402
from meterd.cosem.server import build_session_factory  # noqa: E402
from meterd.proto.hdlc import HdlcParameters  # noqa: E402
from meterd.store.dlms_security_store import DlmsSecurityStore  # noqa: E402
from tests.dlms_fakes import CLIENT_TITLE, TEST_GAK, TEST_GUEK, TEST_PASSWORD, FakeMeter, make_keyring  # noqa: E402
from tests.dlms_gurux_client import GuruxSession, make_client  # noqa: E402
from tests.dlms_harness import LoopThread, PtyIO, length_framed_hdlc_transport  # noqa: E402

ROWS = 60 * 96
BAUD = 9600
BITS_PER_OCTET = 10  # start bit, 8 data bits, stop bit (8N1)
SERVER_SHARE_GOAL = 0.10  # the meter may add at most 10 % to the line time
LP = cosem.CosemAttribute(enumerations.CosemInterface.PROFILE_GENERIC, cosem.Obis(1, 0, 99, 1, 0), 2)


async def _thread_cpu() -> float:
    return time.thread_time()


def server_cpu(meter: Meter) -> float:
    return float(meter.loop.run(_thread_cpu()))


class Meter:
    """A fake meter served on TCP (wrapper) and a pty (HDLC) with the SQLite counter store."""

    def __init__(self, state_dir: Path, profile_rows: int, max_info: int) -> None:
        self.model = FakeMeter(profile_rows)
        self.store = DlmsSecurityStore(state_dir / "dlms_security.db")
        self.keys = make_keyring()
        self.loop = LoopThread()
        self.wrapper_factory = build_session_factory(self.model, self.store, self.keys)
        params = HdlcParameters(max_info_tx=max_info, max_info_rx=max_info)
        hdlc_factory = build_session_factory(self.model, self.store, self.keys,
                                             ServerConfig(link="hdlc", hdlc_params=params, baud=BAUD))
        self.port = self.loop.tcp(self.wrapper_factory)
        self.pty = self.loop.serial(hdlc_factory)

    def next_client_ic(self) -> int:
        return self.store.last_accepted("management/in") + 1

    def stop(self) -> None:
        self.loop.stop()
        self.store.close()


def measure(name: str, meter: Meter, read) -> tuple[float, float]:
    """(wall time, server CPU time) of one read, both in s."""
    cpu0, t0 = server_cpu(meter), time.perf_counter()
    size = read()
    wall, cpu = time.perf_counter() - t0, server_cpu(meter) - cpu0
    print(f"{name} transfer: {wall:.3f} s")
    print(f"{name} server CPU: {cpu:.3f} s")
    if size:
        print(f"{name} profile bytes: {size} B")
    return wall, cpu


def wrapper_read(meter: Meter, hls: bool) -> int:
    io = BlockingTcpIO(host="127.0.0.1", port=meter.port)
    transport = TcpTransport(client_logical_address=1 if hls else 17, server_logical_address=1, io=io)
    if hls:
        client = DlmsClient(transport=transport, authentication=HighLevelSecurityGmacAuthentication(challenge_length=16),
                            encryption_key=TEST_GUEK, authentication_key=TEST_GAK, client_system_title=CLIENT_TITLE,
                            client_initial_invocation_counter=meter.next_client_ic())
    else:
        client = DlmsClient(transport=transport, authentication=LowLevelSecurityAuthentication(secret=TEST_PASSWORD))
    with client.session() as c:
        return len(c.get(LP))


def hdlc_cosem_read(meter: Meter, hls: bool) -> tuple[int, PtyIO]:
    io = PtyIO(meter.pty.slave_path, timeout=10)
    transport = length_framed_hdlc_transport(io, 1 if hls else 17)
    if hls:
        client = DlmsClient(transport=transport, authentication=HighLevelSecurityGmacAuthentication(challenge_length=16),
                            encryption_key=TEST_GUEK, authentication_key=TEST_GAK, client_system_title=CLIENT_TITLE,
                            client_initial_invocation_counter=meter.next_client_ic())
    else:
        client = DlmsClient(transport=transport, authentication=LowLevelSecurityAuthentication(secret=TEST_PASSWORD))
    with client.session() as c:
        return len(c.get(LP)), io


def hdlc_gurux_read(meter: Meter, sap: int, max_info: int) -> tuple[int, PtyIO]:
    io = PtyIO(meter.pty.slave_path, timeout=10)
    client = make_client(sap, hdlc=True, max_info=max_info, invocation_counter=meter.next_client_ic())
    gs = GuruxSession(client, io.send, io.receive)
    gs.connect()
    pg = GXDLMSProfileGeneric("1.0.99.1.0.255")
    gs.read(pg, 3)
    rows = gs.read_raw(pg, 2)
    gs.close()
    io.close()
    if len(rows) != ROWS:
        raise RuntimeError(f"gurux read {len(rows)} rows, expected {ROWS}")
    return 0, io


def line_report(name: str, io: PtyIO, payload: int, wall_s: float, server_cpu_s: float) -> bool:
    """Print the 9600 Bd figures of one HDLC read; True when the server stays within the goal."""
    wire = io.bytes_in + io.bytes_out
    line_s = wire * BITS_PER_OCTET / BAUD
    share = server_cpu_s / line_s
    verdict = "PASS" if share <= SERVER_SHARE_GOAL else "FAIL"
    print(f"{name} bytes on the wire (both ways): {wire} B")
    print(f"{name} line time at {BAUD} Bd, {BITS_PER_OCTET} bits/octet: {line_s:.1f} s")
    print(f"{name} framing overhead ratio (wire bytes / bare A-XDR buffer bytes): {wire / payload:.3f}")
    print(f"{name} server-added time / line time: {server_cpu_s:.3f} s / {line_s:.1f} s = {share * 100:.3f} % "
          f"(goal <= {SERVER_SHARE_GOAL * 100:.0f} %): {verdict}")
    print(f"{name} measured transfer / line time (pty is unpaced): {wall_s / line_s:.4f}")
    return verdict == "PASS"


def association_setup(meter: Meter) -> None:
    """Median in-memory association set-up (AARQ..AARE, plus HLS pass 3/4), no transport."""
    from tests.dlms_gurux_client import connect_in_memory

    for label, sap in (("LLS", 17), ("HLS-GMAC", 1)):
        times = []
        for _ in range(15):
            t0 = time.perf_counter()
            connect_in_memory(meter.wrapper_factory(), sap, invocation_counter=meter.next_client_ic())
            times.append(time.perf_counter() - t0)
        print(f"association set-up {label}: {sorted(times)[len(times) // 2] * 1000:.1f} ms")


def main() -> None:
    import tempfile

    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    state = tempfile.TemporaryDirectory(prefix="bench_dlms_")
    meter = Meter(Path(state.name), profile_rows=ROWS, max_info=2030)
    print(f"counter store: {meter.store.path.name} (SQLite, synchronous=FULL)")
    buffer_len = len(ProfileReader(meter.model.load_profile).buffer(0, None))
    print(f"profile rows: {ROWS}")
    print(f"profile A-XDR size: {buffer_len} B")
    t0 = time.perf_counter()
    ProfileReader(meter.model.load_profile).buffer(0, None)
    print(f"profile encode: {time.perf_counter() - t0:.4f} s")
    association_setup(meter)
    verdicts: list[bool] = []
    try:
        measure("wrapper LLS", meter, lambda: wrapper_read(meter, False))
        measure("wrapper HLS-GMAC", meter, lambda: wrapper_read(meter, True))
        for label, fn in (("HDLC info 128 LLS", lambda: hdlc_cosem_read(meter, False)),
                          ("HDLC info 128 HLS-GMAC", lambda: hdlc_cosem_read(meter, True)),
                          ("HDLC info 2030 LLS", lambda: hdlc_gurux_read(meter, 17, 2030)),
                          ("HDLC info 2030 HLS-GMAC", lambda: hdlc_gurux_read(meter, 1, 2030))):
            box: dict[str, PtyIO] = {}

            def run(fn=fn, box=box) -> int:
                size, box["io"] = fn()
                return size

            wall, cpu = measure(label, meter, run)
            verdicts.append(line_report(label, box["io"], buffer_len, wall, cpu))
        print(f"HDLC {BAUD} Bd server-added time goal (<= {SERVER_SHARE_GOAL * 100:.0f} % of line time): "
              f"{'PASS' if all(verdicts) else 'FAIL'} ({sum(verdicts)}/{len(verdicts)} cases)")
    finally:
        meter.stop()
        state.cleanup()


if __name__ == "__main__":
    main()
