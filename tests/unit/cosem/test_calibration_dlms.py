"""The calibration's identifier and date over DLMS (0-0:96.2.128.255, 0-0:96.2.5.255)."""

from __future__ import annotations

from pathlib import Path

from gurux_dlms.objects import GXDLMSData

from meterd.app.features.dlms import registry_for
from meterd.core.calibration import CalibrationValues
from meterd.cosem.config import ServerConfig
from meterd.cosem.datetime_codec import encode_utc
from meterd.cosem.security import MemoryCounterStore
from meterd.cosem.server import build_session_factory
from meterd.services.calibration import ApplyRequest, CalibrationService
from tests.dlms_fakes import make_keyring
from tests.dlms_gurux_client import GuruxSession, make_client
from tests.dlms_harness import LoopThread, SocketIO
from tests.simmeter import SimMeter


def test_identifier_and_date_of_the_calibration_over_dlms(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path)
    service = meter.service(CalibrationService)
    store = MemoryCounterStore()
    loop = LoopThread()
    try:
        port = loop.tcp(build_session_factory(meter.daemon.meter, store, make_keyring(),
                                              ServerConfig(registry=registry_for(meter.daemon.context()))))

        def read(ln: str) -> object:
            io = SocketIO(port)
            gs = GuruxSession(make_client(1, invocation_counter=store.last_accepted("management/in") + 1),
                              io.send, io.receive)
            gs.connect()
            try:
                return gs.read(GXDLMSData(ln), 2)
            finally:
                gs.close()

        assert read("0.0.96.2.128.255") in ("", b"", None)
        record = service.apply(ApplyRequest(CalibrationValues().with_phase(0, energy_gain=12), operator="A. Technician",
                                            reference_instrument="RS-3 #1234", uncertainty_pct=0.02))
        assert record is not None
        ident = read("0.0.96.2.128.255")
        assert (ident.decode() if isinstance(ident, bytes) else str(ident)) == record.calibration_id
        date = read("0.0.96.2.5.255")
        assert isinstance(date, bytes | bytearray) and bytes(date) == encode_utc(record.utc)
        assert bytes(date)[:4] == bytes((record.utc.year >> 8, record.utc.year & 0xFF, record.utc.month,
                                         record.utc.day))
    finally:
        loop.stop()
        meter.close()
