"""A/B update numbers with the real rauc: verify time (``rauc info``: the CMS signature over the
whole bundle) and install time of a realistic bundle into the inactive slot of the simulated
board (file-backed slots, the board's own D-Bus and RAUC service, the tryboot handler).

The payload is random (incompressible) like a squashfs root filesystem; ``--mb`` sets its size
(default 64 MiB; a Raspberry Pi OS Lite root file system is some hundreds). Throwaway keys in a
temporary directory. Needs rauc, dbus-daemon, mksquashfs and openssl.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hw.boot_sim import SimBoard  # noqa: E402
from hw.rauc import RaucClient  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=64, help="payload size (MiB)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    missing = [p for p in ("rauc", "dbus-daemon", "mksquashfs", "openssl") if shutil.which(p) is None]
    if missing:
        print(f"bench_firmware_install: skipped, needs {', '.join(missing)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cert, key = tmp / "cert.pem", tmp / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:3072", "-nodes", "-days", "1", "-subj",
                        "/CN=bench", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
        bundle = tmp / "bench.raucb"
        t0 = time.perf_counter()
        subprocess.run(["bash", str(REPO / "image" / "rauc" / "build-bundle.sh"), "--version", "9.0.0", "--size-mb",
                        str(args.mb), "--cert", str(cert), "--key", str(key), "--out", str(bundle)], check=True,
                       capture_output=True, env={**os.environ, "PYTHON": sys.executable})
        build_s = time.perf_counter() - t0
        board = SimBoard(tmp / "board")
        board.prepare(cert, "pmm1221-rpi4")
        board.boot()
        services = board.start_services()
        try:
            client = RaucClient(board.conf, bus_address=board.bus_address)
            verify, install = [], []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                asyncio.run(client.info(bundle))
                verify.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                asyncio.run(client.install(bundle))
                install.append(time.perf_counter() - t0)
            status = asyncio.run(client.status())
        finally:
            services.stop()
    print(f"bundle: {args.mb} MiB payload, built and signed in {build_s:.2f} s")
    print(f"verify (rauc info, signature over {args.mb} MiB): "
          f"min {min(verify):.2f} s, max {max(verify):.2f} s over {args.runs} runs")
    print(f"install to the inactive slot (rauc install via the service): min {min(install):.2f} s, "
          f"max {max(install):.2f} s ({args.mb / min(install):.0f} MiB/s)")
    print(f"next tryboot slot after the install: {status.primary} (booted {status.booted})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
