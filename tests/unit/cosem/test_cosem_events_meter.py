"""On a whole simulated meter: a failed LLS login is in the security log, read back over DLMS by
gurux's client (a library we did not write); associations go to the communication log."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from gurux_dlms.objects import GXDLMSProfileGeneric

from meterd.app.features.dlms import session_factory
from meterd.core import event_codes as ec
from meterd.core.event_codes import LogId
from meterd.cosem import datetime_codec
from meterd.services.supervision import Supervision
from tests.dlms_fakes import make_keys
from tests.dlms_gurux_client import GuruxSession, InMemoryTransport, make_client
from tests.simmeter import SimMeter
from tests.simmeter_dlms import Client

START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)


def test_failed_lls_login_is_read_from_the_security_log_over_dlms(tmp_path: Path) -> None:
    make_keys(tmp_path / "dlms-keys.toml").save()
    meter = SimMeter(tmp_path, sim={"start_utc": START.isoformat()}, display={"kind": "dummy"})
    try:
        meter.run(2)
        failed_at = meter.clock.utc()
        transport = InMemoryTransport(session_factory(meter.daemon.context(), "wrapper", "tcp")())
        intruder = GuruxSession(make_client(17, password=b"letmein1"), transport.send, transport.receive)
        with pytest.raises(Exception, match="rejected"):  # gurux raises a bare exception on a refused AARE
            intruder.connect()
        meter.run(2)
        with Client(meter, 17) as gs:
            pg = GXDLMSProfileGeneric("0.0.99.98.8.255")
            gs.read(pg, 3)
            assert [c[0].logicalName for c in pg.captureObjects] == ["0.0.1.0.0.255", "0.0.96.11.8.255"]
            rows = gs.read_raw(pg, 2)
        codes = [row[1] for row in rows]
        assert codes == [ec.code("AUTHENTICATION_FAILURES")]
        assert datetime_codec.decode_utc(bytes(rows[0][0])) == failed_at.replace(microsecond=0)
        sup = meter.service(Supervision)
        [entry] = sup.recorder.log(LogId.SECURITY).entries()
        assert entry.detail["client_sap"] == 17 and entry.detail["link"] == "tcp"
        assert "letmein1" not in repr(entry)
        communication = [e.code for e in sup.recorder.log(LogId.COMMUNICATION).entries()]
        assert communication[:1] == [ec.code("REMOTE_SESSION_OPENED")]  # the reader's own session
    finally:
        meter.close()
