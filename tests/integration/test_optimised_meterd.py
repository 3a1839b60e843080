"""meterd as its systemd unit runs it (``python -OO -X no_debug_ranges``: no docstrings, no asserts,
no column ranges) meters, answers its API with the same route descriptions and serves DLMS clients."""

from __future__ import annotations

import time
from pathlib import Path

from gurux_dlms.objects import GXDLMSRegister

from meterd.app.simrun import METERD_PYTHON_FLAGS
from tests.dlms_gurux_client import GuruxSession, make_client
from tests.dlms_harness import SocketIO
from tests.meterd_process import MeterdProcess


def test_optimised_meterd_meters_and_serves_its_api_and_dlms(tmp_path: Path) -> None:
    meter = MeterdProcess(tmp_path, power_quality=True, python_flags=METERD_PYTHON_FLAGS)
    try:
        assert Path(f"/proc/{meter.proc.pid}/cmdline").read_bytes().split(b"\0")[1:4] == [flag.encode() for flag in METERD_PYTHON_FLAGS]
        status = meter.api("GET", "/status")[1]
        assert status["energy"]["total"]["active_import_wh"] >= 0
        assert status["loop"]["gc_frozen_objects"] > 50_000  # the start-up's objects, out of every collection
        code, doc = meter.api("GET", "/openapi.json")
        assert code == 200
        assert doc["paths"]["/status"]["get"]["summary"].startswith("Instantaneous values")
        assert doc["paths"]["/firmware"]["get"]["summary"] == "The running firmware, the slots and the last update."
        io = SocketIO(meter.dlms_port)
        session = GuruxSession(make_client(17), io.send, io.receive)
        session.connect()
        try:
            register = GXDLMSRegister("1.0.1.8.0.255")
            session.read(register, 3)
            session.read(register, 2)
            assert register.unit == 30 and register.value >= 0  # Wh
        finally:
            session.close()
        cycles, deadline = int(meter.status()["loop"]["cycles"]), time.monotonic() + 30.0
        while int(meter.status()["loop"]["cycles"]) < cycles + 3:  # it keeps metering (speed 10)
            assert time.monotonic() < deadline, "meterd stopped metering"
    finally:
        assert meter.stop() == 0
