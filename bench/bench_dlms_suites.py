"""DLMS benchmark: security suite 2 (HLS-ECDSA on P-384, AES-GCM-256) against suite 0 (HLS-GMAC,
AES-GCM-128) on the management association over the TCP wrapper, in memory.

* association set-up: AARQ/AARE and HLS passes 3 and 4, the meter's CPU time per association
  (the gurux client plays the head end; its pure-Python ECDSA is not counted);
* a 60-day, 15-minute load profile (5760 rows) read whole with glo-ciphered GET data blocks: the
  meter's CPU time (the head end's requests and decryption are made with ``cryptography`` outside
  the timed part).

Prints both for each suite and the ratio suite 2 / suite 0. Run from the repository root:
``.venv/bin/python bench/bench_dlms_suites.py``.
"""

from __future__ import annotations

import struct
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: E402

from tests.dlms_fakes import CLIENT_TITLE, SERVER_TITLE  # noqa: E402
from tests.pki_fakes import SuiteRig  # noqa: E402

ROWS = 60 * 96
ASSOCIATIONS = 10
LP_GET = bytes.fromhex("c001c1" "0007" "0100630100ff" "02" "00")  # GET 1-0:99.1.0.255/2


class TimedServer:
    """Counts the CPU time the meter's COSEM server spends answering."""

    def __init__(self, session: Any) -> None:
        self.cpu_s = 0.0
        server = session.server
        serve = server.handle_apdus

        def timed(client_sap: int, apdu: bytes) -> list[bytes]:
            t0 = time.process_time()
            try:
                answers: list[bytes] = serve(client_sap, apdu)
                return answers
            finally:
                self.cpu_s += time.process_time() - t0

        server.handle_apdus = timed


def _rig(suite: int) -> SuiteRig:
    return SuiteRig(suite, mechanism=7 if suite else 5, profile_rows=ROWS)


def association_s(suite: int) -> float:
    """The meter's CPU time per association (s)."""
    rig = _rig(suite)
    total = 0.0
    for _ in range(ASSOCIATIONS):
        gs, transport = rig.gurux("wrapper", 1)
        timer = TimedServer(transport.session)
        gs.connect()
        total += timer.cpu_s
        gs.close()
    return total / ASSOCIATIONS


def _seal(rig: SuiteRig, plain: bytes) -> bytes:
    ic, sc = rig.next_ic(), 0x30 | rig.suite
    enc = Cipher(algorithms.AES(rig.ek), modes.GCM(CLIENT_TITLE + struct.pack(">I", ic))).encryptor()
    enc.authenticate_additional_data(bytes((sc,)) + rig.ak)
    payload = bytes((sc,)) + struct.pack(">I", ic) + enc.update(plain) + enc.finalize() + enc.tag[:12]
    return b"\xc8" + bytes((len(payload),)) + payload


def _open(rig: SuiteRig, apdu: bytes) -> bytes:
    first = apdu[1]
    start = 2 if first < 0x80 else 2 + (first & 0x7F)
    payload = apdu[start:]
    dec = Cipher(algorithms.AES(rig.ek), modes.GCM(SERVER_TITLE + payload[1:5], payload[-12:],
                                                   min_tag_length=12)).decryptor()
    dec.authenticate_additional_data(payload[:1] + rig.ak)
    return dec.update(payload[5:-12]) + dec.finalize()


def profile_readout(suite: int) -> tuple[float, int, int]:
    """(meter CPU time in s, GET data blocks, octets from the meter) of the whole 60-day profile."""
    rig = _rig(suite)
    gs, transport = rig.gurux("wrapper", 1)
    gs.connect()
    server = transport.session.server
    requests = [LP_GET]
    cpu_s, blocks, octets = 0.0, 0, 0
    while requests:
        request = _seal(rig, requests.pop())
        t0 = time.process_time()
        answer = server.handle_apdus(1, request)[0]
        cpu_s += time.process_time() - t0
        plain = _open(rig, answer)
        blocks, octets = blocks + 1, octets + len(answer)
        assert plain[:2] == b"\xc4\x02", plain[:4].hex()  # GET-response-with-datablock
        if plain[3] == 0:  # not the last block
            number = int.from_bytes(plain[4:8], "big")
            requests.append(bytes.fromhex("c002c1") + number.to_bytes(4, "big"))
    gs.close()
    return cpu_s, blocks, octets


def main() -> None:
    results = {}
    for suite in (0, 2):
        setup_s = association_s(suite)
        read_s, blocks, octets = profile_readout(suite)
        results[suite] = (setup_s, read_s)
        mechanism = "HLS-ECDSA P-384, AES-GCM-256" if suite else "HLS-GMAC, AES-GCM-128"
        print(f"suite {suite} ({mechanism}): association set-up {setup_s * 1000:.2f} ms (meter CPU); "
              f"60-day profile ({ROWS} rows) {read_s:.3f} s in {blocks} blocks, {octets} octets")
    print(f"ratio suite 2 / suite 0: association set-up {results[2][0] / results[0][0]:.1f}×, "
          f"profile readout {results[2][1] / results[0][1]:.2f}×")


if __name__ == "__main__":
    main()
