"""A gurux client (a DLMS client this project did not write) on an in-process simulated meter."""

from __future__ import annotations

from meterd.app.features.dlms import session_factory
from tests.dlms_gurux_client import GuruxSession, InMemoryTransport, make_client
from tests.simmeter import SimMeter


class Client:
    """A gurux client of one association on a fresh session of the meter's own registry
    (the same objects the daemon serves on its links); ``ic`` is the first invocation counter."""

    def __init__(self, meter: SimMeter, sap: int, ic: int = 1) -> None:
        factory = session_factory(meter.daemon, "wrapper", "tcp")  # with the meter's event recorder
        transport = InMemoryTransport(factory())
        self.gs = GuruxSession(make_client(sap, invocation_counter=ic), transport.send, transport.receive)
        self.gs.connect()

    def __enter__(self) -> GuruxSession:
        return self.gs

    def __exit__(self, *exc: object) -> None:
        self.gs.close()
