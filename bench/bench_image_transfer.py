"""Firmware image transfer over DLMS: how long a realistic bundle takes over HDLC at 9600 Bd and
over the TCP wrapper, with the gurux client (management association, HLS-GMAC, authenticated and
encrypted APDUs) against the whole simulated meter's own objects.

* TCP: a real localhost socket to the meter's wrapper; wall time of initiate and every block.
* HDLC at 9600 Bd: a multi-megabyte image cannot be sent over a paced line in a bench run (an
  hour of line time), so the transfer runs through the meter's real HDLC session in memory,
  counting every octet each way; its time at 9600 Bd is the line time of those octets (10 bit
  times per character, RS-485 half duplex: one direction at a time, the client waits for each
  answer, window 1) plus the CPU time both ends spent (measured here, on this machine). The
  ratio compares that with the bare line time of the image's own octets. The model is checked
  against a short transfer on a pty pair paced at 9600 Bd (``--check-kb``).

The image is a signed RAUC bundle: ``--bundle FILE`` (e.g. ``make bundle``'s, or
``image/rauc/build-bundle.sh --size-mb 3``), else one built here with throwaway keys around
``--size-mb`` of random payload (a squashfs root file system is incompressible), else, without
rauc, that many random octets (transferred alike: the meter does not look inside before verify).

Prints ``name: value unit`` lines. Run from the repo root:
``.venv/bin/python bench/bench_image_transfer.py [--size-mb 3 | --bundle FILE] [--check-kb 8]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from gurux_dlms.objects import GXDLMSImageTransfer

from meterd.app.features.dlms import DlmsSecurity, session_factory
from meterd.services.image_transfer import ImageTransferService
from tests.dlms_gurux_client import GuruxSession, InMemoryTransport, make_client
from tests.image_transfer_client import send_blocks
from tests.interop.test_image_transfer_dlms import new_meter
from tests.simmeter import SimMeter

BAUD = 9600
CHAR_S = 10 / BAUD  # s per character, 8N1


def _transfer(meter: SimMeter, gs: GuruxSession, image: bytes) -> float:
    """Initiate and send every block; wall seconds."""
    it = GXDLMSImageTransfer()
    t0 = time.perf_counter()
    gs.read(it, 2)
    gs.exchange(it.imageTransferInitiate(gs.client, "bench-image", len(image)))
    send_blocks(gs, it, image)
    elapsed = time.perf_counter() - t0
    assert meter.service(ImageTransferService).files.image_path.read_bytes() == image
    return elapsed


def _ic(meter: SimMeter) -> int:
    return int(meter.daemon.registry.need(DlmsSecurity, by="bench").store.last_accepted("management/in")) + 1


def over_tcp(state: Path, image: bytes) -> dict[str, float]:
    from tests.dlms_harness import LoopThread, SocketIO

    meter = new_meter(state)
    loop = LoopThread()
    try:
        port = loop.tcp(session_factory(meter.daemon.context(), "wrapper", "tcp"))
        io = SocketIO(port)
        gs = GuruxSession(make_client(1, invocation_counter=_ic(meter)), io.send, io.receive)
        gs.connect()
        cpu0 = time.process_time()
        seconds = _transfer(meter, gs, image)
        cpu = time.process_time() - cpu0
        gs.close()
        io.close()
    finally:
        loop.stop()
        meter.close()
    return {"s": seconds, "kB_per_s": len(image) / seconds / 1000, "cpu_s": cpu}


def over_hdlc_counted(state: Path, image: bytes) -> dict[str, float]:
    """The transfer through the meter's HDLC session in memory: octets each way, frames, CPU."""
    meter = new_meter(state)
    try:
        session = session_factory(meter.daemon.context(), "hdlc", "rs485")()
        transport = InMemoryTransport(session)
        frames = [0]

        def send(data: bytes) -> None:
            frames[0] += 1
            transport.send(data)

        gs = GuruxSession(make_client(1, hdlc=True, invocation_counter=_ic(meter)), send, transport.receive)
        gs.connect()
        before = (transport.bytes_out, transport.bytes_in, frames[0])
        cpu0 = time.process_time()
        _transfer(meter, gs, image)
        cpu = time.process_time() - cpu0
        out, into, n = (transport.bytes_out - before[0], transport.bytes_in - before[1], frames[0] - before[2])
        gs.close()
    finally:
        meter.close()
    line = (out + into) * CHAR_S
    return {"octets_to_meter": out, "octets_from_meter": into, "frames": n, "cpu_s": cpu, "line_s": line,
            "model_s": line + cpu}


def over_paced_pty(state: Path, image: bytes) -> float:
    """Wall seconds of the transfer on a pty pair paced at 9600 Bd (the model's check)."""
    from hw.serial_link import PtyWire
    from meterd.runtime.dlms_serial import SerialLink
    from tests.dlms_harness import LoopThread, PtyIO

    meter = new_meter(state)
    loop = LoopThread()
    wire = PtyWire(baud=BAUD)
    link: Any = None
    try:
        link = loop.run(SerialLink(session_factory(meter.daemon.context(), "hdlc", "rs485"), wire.path_a,
                                   BAUD).start())
        io = PtyIO(wire.path_b, timeout=10.0)
        gs = GuruxSession(make_client(1, hdlc=True, invocation_counter=_ic(meter)), io.send, io.receive)
        gs.connect()
        seconds = _transfer(meter, gs, image)
        gs.close()
        io.close()
    finally:
        if link is not None:
            loop.run(link.close())
        loop.stop()
        wire.close()
        meter.close()
    return seconds


def bundle_of(size_mb: float, directory: Path) -> tuple[bytes, str]:
    """A signed RAUC bundle around ``size_mb`` MiB of random payload (throwaway keys), or that
    many random octets when rauc, mksquashfs or openssl is missing; with what it is."""
    import shutil
    import subprocess
    import sys

    if any(shutil.which(tool) is None for tool in ("rauc", "mksquashfs", "openssl")):
        return os.urandom(int(size_mb * 1024 * 1024)), "random octets (no rauc here)"
    cert, key, payload = directory / "cert.pem", directory / "key.pem", directory / "rootfs.img"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:3072", "-nodes", "-days", "1", "-subj", "/CN=bench",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    payload.write_bytes(os.urandom(int(size_mb * 1024 * 1024)))
    out = directory / "bench.raucb"
    repo = Path(__file__).resolve().parents[1]
    subprocess.run(["bash", str(repo / "image" / "rauc" / "build-bundle.sh"), "--version", "9.0.0", "--rootfs",
                    str(payload), "--cert", str(cert), "--key", str(key), "--out", str(out)], check=True,
                   capture_output=True, env={**os.environ, "PYTHON": sys.executable})
    return out.read_bytes(), "signed RAUC bundle (plain, squashfs, RSA-3072 CMS signature)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=3.0, help="payload of the bundle built here (MiB)")
    parser.add_argument("--bundle", type=Path, help="transfer this bundle instead")
    parser.add_argument("--check-kb", type=float, default=8.0, help="size of the paced-line check (KiB; 0: skip)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.bundle is not None:
            image, what = args.bundle.read_bytes(), f"{args.bundle}"
        else:
            image, what = bundle_of(args.size_mb, root)
        bare = len(image) * CHAR_S
        print(f"bundle: {what}")
        print(f"bundle_size: {len(image)} octets, block size 512 octets, {-(-len(image) // 512)} blocks")
        tcp = over_tcp(root / "tcp", image)
        print(f"tcp_wrapper_transfer: {tcp['s']:.1f} s")
        print(f"tcp_wrapper_throughput: {tcp['kB_per_s']:.1f} kB/s")
        print(f"tcp_wrapper_cpu_both_ends: {tcp['cpu_s']:.1f} s (client and meter in one process)")
        hdlc = over_hdlc_counted(root / "hdlc", image)
        print(f"hdlc_octets_to_meter: {hdlc['octets_to_meter']:.0f} octets")
        print(f"hdlc_octets_from_meter: {hdlc['octets_from_meter']:.0f} octets")
        print(f"hdlc_frames_sent: {hdlc['frames']:.0f} frames (information field 128 octets, window 1)")
        print(f"hdlc_cpu_both_ends: {hdlc['cpu_s']:.1f} s")
        print(f"hdlc_9600_line_time_of_image: {bare:.0f} s ({bare / 60:.1f} min)")
        print(f"hdlc_9600_transfer_estimate: {hdlc['model_s']:.0f} s ({hdlc['model_s'] / 60:.1f} min)")
        print(f"hdlc_9600_ratio_to_line_time: {hdlc['model_s'] / bare:.2f}")
        if args.check_kb > 0:
            small = image[:int(args.check_kb * 1024)]
            check = over_hdlc_counted(root / "check-model", small)
            paced = over_paced_pty(root / "check-paced", small)
            print(f"paced_check_size: {len(small)} octets")
            print(f"paced_check_measured: {paced:.1f} s")
            print(f"paced_check_model: {check['model_s']:.1f} s")
            print(f"paced_check_ratio_to_line_time: {paced / (len(small) * CHAR_S):.2f}")


if __name__ == "__main__":
    main()
