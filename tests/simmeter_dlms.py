"""A gurux client (a DLMS client this project did not write) on an in-process simulated meter."""

from __future__ import annotations

from meterd.app.features.dlms import DlmsSecurity, session_factory
from tests.dlms_gurux_client import GuruxSession, InMemoryTransport, make_client
from tests.dlms_harness import PtyIO, SocketIO
from tests.simmeter import SimMeter


class Client:
    """A gurux client of one association on a fresh session of the meter's own registry
    (the same objects the daemon serves on its links); ``ic`` is the first invocation counter."""

    def __init__(self, meter: SimMeter, sap: int, ic: int = 1) -> None:
        factory = session_factory(meter.daemon.context(), "wrapper", "tcp")  # with the meter's event recorder
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

        self.store = meter.daemon.registry.need(DlmsSecurity, by="test").store
        self.loop = LoopThread()
        self.port = self.loop.tcp(session_factory(meter.daemon.context(), "wrapper", "tcp"))
        link = self.loop.serial(session_factory(meter.daemon.context(), "hdlc", "rs485"))
        assert link.slave_path is not None
        self.pty_path: str = link.slave_path

    def next_client_ic(self) -> int:
        """The management client's next invocation counter (the last accepted one + 1)."""
        return int(self.store.last_accepted("management/in")) + 1

    def stop(self) -> None:
        self.loop.stop()


def link_io(links: ServedLinks, link: str) -> SocketIO | PtyIO:
    """The client side of a served link: ``wrapper`` (TCP) or the HDLC pty."""
    return SocketIO(links.port) if link == "wrapper" else PtyIO(links.pty_path)


class GuruxAssociation:
    """A gurux association on one served link; closes the association and the line."""

    def __init__(self, links: ServedLinks, link: str, sap: int) -> None:
        self.io = link_io(links, link)
        client = make_client(sap, hdlc=link != "wrapper", invocation_counter=links.next_client_ic())
        self.gs = GuruxSession(client, self.io.send, self.io.receive)
        self.gs.connect()

    def __enter__(self) -> GuruxSession:
        return self.gs

    def __exit__(self, *exc: object) -> None:
        try:
            self.gs.close()
        finally:
            self.io.close()
