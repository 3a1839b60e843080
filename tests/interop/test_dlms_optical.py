"""Interop on the optical port: IEC 62056-21 mode E sign-on then HDLC, with pydlms's optical client."""

from __future__ import annotations

import pytest

from meterd.proto.iec62056_21 import ModeESignOn
from tests.dlms_fakes import TEST_PASSWORD
from tests.dlms_harness import LoopThread, Meter

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def optical():
    meter = Meter(profile_rows=96, with_pty=False)
    loop = LoopThread()
    link = loop.serial(meter.hdlc_factory, optical=ModeESignOn("PMM", "PMM1221000042", max_baud=9600))
    yield meter, link
    loop.stop()
    meter.stop()


def test_pydlms_optical_sign_on_then_lls_reads(optical):
    from pydlms import DlmsClient, Mechanism

    meter, link = optical
    with DlmsClient.optical(link.slave_path, client_sap=17, max_baud=9600, mechanism=Mechanism.LLS,
                            password=TEST_PASSWORD, timeout=3.0) as m:
        assert m.get_register("1.0.1.8.0.255").value is not None
        assert m.get_clock() is not None
