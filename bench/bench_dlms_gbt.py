"""DLMS benchmark: a 60-day, 15-minute load profile (5760 rows) read over the TCP wrapper (in
memory, the reader association, LLS) with GET data blocks and with general block transfer (GBT)
at windows 1 and 8; and a GET-with-list of 10 registers against 10 GET-normal requests.

Prints the round trips (request APDUs the client sends), the octets the meter sends, the
server's time and, for a link with a round-trip time of 300 ms (cellular), the time the round
trips alone cost. Run from the repository root: ``.venv/bin/python bench/bench_dlms_gbt.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gurux_dlms.enums import Conformance  # noqa: E402
from gurux_dlms.objects import GXDLMSProfileGeneric  # noqa: E402

from meterd.cosem.security import MemoryCounterStore  # noqa: E402
from meterd.cosem.server import build_session_factory  # noqa: E402
from meterd.cosem.xdlms_codec import GbtBlock, parse_gbt  # noqa: E402
from tests.dlms_fakes import FakeMeter, make_keyring  # noqa: E402
from tests.dlms_gurux_client import GuruxSession, Spy, make_client  # noqa: E402

ROWS = 60 * 96
RTT_S = 0.3
LP_GET = bytes.fromhex("c001c1" "0007" "0100630100ff" "02" "00")  # GET 1-0:99.1.0.255/2
REGISTERS = [bytes((0, 3, 1, 0, q, 8, 0, 255, 2, 0)) for q in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)]


def _session(gbt: bool) -> tuple[GuruxSession, Spy]:
    factory = build_session_factory(FakeMeter(ROWS), MemoryCounterStore(), make_keyring())
    spy = Spy(factory())
    client = make_client(17)
    if gbt:
        client.proposedConformance = ((client.proposedConformance | Conformance.GENERAL_BLOCK_TRANSFER)
                                      & ~Conformance.BLOCK_TRANSFER_WITH_GET_OR_READ)
    gs = GuruxSession(client, spy.send, spy.receive)
    gs.connect()
    return gs, spy


def _report(name: str, trips: int, octets: int, server_s: float) -> None:
    print(f"{name}: {trips} round trips, {octets} octets from the meter, server {server_s:.3f} s, "
          f"round trips at {RTT_S * 1000:.0f} ms RTT: {trips * RTT_S:.1f} s")


def datablocks() -> None:
    gs, spy = _session(gbt=False)
    pg = GXDLMSProfileGeneric("1.0.99.1.0.255")
    gs.read(pg, 3)
    server = spy.session.server
    t0 = time.process_time()
    answer = server.handle_apdus(17, LP_GET)
    trips, octets, number = 1, sum(map(len, answer)), 1
    while answer[0][3] == 0:  # not the last GET data block
        answer = server.handle_apdus(17, bytes.fromhex("c002c1") + number.to_bytes(4, "big"))
        trips, octets, number = trips + 1, octets + sum(map(len, answer)), number + 1
    _report("GET data blocks", trips, octets, time.process_time() - t0)


def gbt(window: int) -> None:
    _, spy = _session(gbt=True)
    server = spy.session.server
    t0 = time.process_time()
    blocks = [parse_gbt(a) for a in server.handle_apdus(17, LP_GET)]
    trips, own = 1, 1
    while not blocks[-1].last:
        own += 1
        ack = GbtBlock(False, False, window, own, blocks[-1].number, b"").encode()
        blocks += [parse_gbt(a) for a in server.handle_apdus(17, ack)]
        trips += 1
    octets = sum(len(b.encode()) for b in blocks)
    _report(f"GBT window {window}", trips, octets, time.process_time() - t0)


def with_list() -> None:
    _, spy = _session(gbt=False)
    server = spy.session.server
    t0 = time.perf_counter()
    for _ in range(100):
        for item in REGISTERS:
            server.handle_apdu(17, bytes.fromhex("c001c1") + item)
    normal_s = (time.perf_counter() - t0) / 100
    request = bytes.fromhex("c003c1") + bytes((len(REGISTERS),)) + b"".join(REGISTERS)
    t0 = time.perf_counter()
    for _ in range(100):
        server.handle_apdu(17, request)
    list_s = (time.perf_counter() - t0) / 100
    print(f"10 registers: 10 GET-normal {normal_s * 1000:.2f} ms (10 round trips), "
          f"1 GET-with-list {list_s * 1000:.2f} ms (1 round trip)")


def main() -> None:
    print(f"load profile: {ROWS} rows, wrapper, reader (LLS), PDU 1024")
    datablocks()
    gbt(1)
    gbt(8)
    with_list()


if __name__ == "__main__":
    main()
