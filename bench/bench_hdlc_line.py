"""HDLC line time of a 60-day load-profile readout at 9600 Bd: information field 2030 / window 7
against 128 / 1.

The meter's HDLC session (:class:`meterd.cosem.sessions.HdlcSession` over the real COSEM server,
a fake meter with a 60-day, 15-minute profile of 5760 rows) is driven in process by a scripted
HDLC head end that negotiates the information field and the window in its SNRM, sends its
requests and acknowledges each window of segments with one RR. The APDUs (AARQ, GET of the
profile buffer and every GET-next block) come from the gurux client, so both runs carry exactly
the same application data; only the link differs.

Line time is what the paced line counts: every octet both ways, 10 bit times each (8N1: start,
8 data, stop) at 9600 Bd. The number of line turnarounds (one per request or RR and its answer)
is printed too: each costs a real line a reaction time on top (not included). A window saves
turnarounds only where an answer needs more than one information field: the server's APDUs
(blocks of its negotiated PDU size) fit one 2030-octet field, so 2030/1 and 2030/7 match.

Run from the repository root: ``.venv/bin/python bench/bench_hdlc_line.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gurux_dlms.objects import GXDLMSProfileGeneric  # noqa: E402

from meterd.cosem.config import ServerConfig  # noqa: E402
from meterd.cosem.security import MemoryCounterStore  # noqa: E402
from meterd.cosem.server import build_session_factory  # noqa: E402
from meterd.cosem.sessions import HdlcSession  # noqa: E402
from meterd.proto.hdlc import HdlcParameters  # noqa: E402
from tests.dlms_fakes import FakeMeter, make_keyring  # noqa: E402
from tests.hdlc_head_end import BAUD, HeadEnd, LineCount, gurux_over  # noqa: E402

ROWS = 60 * 96


def readout(info: int, window: int) -> tuple[LineCount, int]:
    """(line count, rows) of the whole 60-day profile read with ``info`` / ``window``."""
    model = FakeMeter(ROWS)
    params = HdlcParameters(max_info_tx=2030, max_info_rx=2030, window_tx=7, window_rx=7)
    factory = build_session_factory(model, MemoryCounterStore(), make_keyring(),
                                    ServerConfig(link="hdlc", hdlc_params=params, baud=BAUD))
    session = factory()
    assert isinstance(session, HdlcSession)
    head_end = HeadEnd(session, info, window)
    head_end.connect()
    gs = gurux_over(head_end)
    gs.connect()
    pg = GXDLMSProfileGeneric("1.0.99.1.0.255")
    gs.read(pg, 3)
    gs.read(pg, 2)
    assert (session.link.max_info_tx, session.link.window_tx) == (info, window)
    return head_end.count, len(pg.buffer)


def main() -> None:
    print(f"60-day load profile ({ROWS} rows), HDLC at {BAUD} Bd 8N1, line time of every octet both ways")
    results = {}
    for info, window in ((128, 1), (128, 7), (2030, 1), (2030, 7)):
        count, rows = readout(info, window)
        assert rows == ROWS
        results[info, window] = count
        print(f"  info {info:4d} / window {window}: {count.to_meter + count.from_meter:8d} octets "
              f"({count.to_meter} to the meter), {count.turnarounds:5d} turnarounds, line time {count.line_s:7.1f} s")
    small, large = results[128, 1], results[2030, 7]
    print(f"line time 128/1 over 2030/7: {small.line_s / large.line_s:.3f} "
          f"({(small.line_s - large.line_s) / large.line_s * 100:.1f} % more at 128/1); "
          f"turnarounds {small.turnarounds} vs {large.turnarounds}")


if __name__ == "__main__":
    main()
