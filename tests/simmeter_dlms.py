"""A gurux client (a DLMS client this project did not write) on an in-process simulated meter."""

from __future__ import annotations

from meterd.app.features.dlms import registry_for, session_factory
from meterd.cosem.server import build_session_factory
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


class ServedLinks:
    """The meter's own registry served the way the daemon serves it: a TCP wrapper port and an
    HDLC pseudo-terminal (not paced: a pty ignores the baud rate), on an asyncio loop in a
    background thread, for blocking clients. Nothing may drive the meter's cycles while a client
    talks to it (one owner of the model at a time)."""

    def __init__(self, meter: SimMeter) -> None:
        from tests.dlms_harness import LoopThread

        d = meter.daemon
        self.store = d.services["dlms_security_store"]
        registry = registry_for(d)
        self.loop = LoopThread()
        self.port = self.loop.tcp(build_session_factory(d.meter, self.store, d.services["dlms_keys"],
                                                        "wrapper", registry))
        link = self.loop.serial(build_session_factory(d.meter, self.store, d.services["dlms_keys"],
                                                      "hdlc", registry))
        assert link.slave_path is not None
        self.pty_path: str = link.slave_path

    def next_client_ic(self) -> int:
        """The management client's next invocation counter (the last accepted one + 1)."""
        return int(self.store.last_accepted("management/in")) + 1

    def stop(self) -> None:
        self.loop.stop()
