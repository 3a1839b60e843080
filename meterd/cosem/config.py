"""The settings of one DLMS link's sessions: :class:`ServerConfig`.

One frozen value per link (TCP wrapper, RS-485 HDLC, optical port) says how its sessions frame
APDUs, which associations and objects they serve, what the communication objects show, how
authentication failures lock clients out and where events go. The meter model, the keys and the
invocation-counter store are passed next to it (see
:func:`meterd.cosem.server.build_session_factory`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from meterd.core.ports import EventSink
from meterd.cosem.errors import CosemError
from meterd.cosem.objects import (
    DEFAULT_ASSOCIATIONS,
    AssociationConfig,
    HdlcSetup,
    ObjectRegistry,
    OpticalSetup,
)
from meterd.cosem.profile import LegalTimeSource
from meterd.cosem.security import LockoutPolicy
from meterd.proto.hdlc import HdlcParameters

LinkKind = Literal["wrapper", "hdlc"]
LINK_KINDS: tuple[LinkKind, ...] = ("wrapper", "hdlc")


@dataclass(frozen=True)
class ServerConfig:
    """The settings of one link's sessions.

    ``link``: the framing, "wrapper" (IEC 62056-47) or "hdlc" (IEC 62056-46);
    ``link_name``: the link named in event details ("tcp", "rs485", "optical"; default: ``link``);
    ``server_sap``: the logical device; ``max_pdu``: the largest PDU received and sent (octets);
    ``associations``: the client SAPs served and their rights; ``registry``: the objects (None:
    :func:`~meterd.cosem.objects.default_registry`); ``hdlc_params``: addresses and information
    field lengths of an HDLC link; ``baud`` (Bd) the HDLC link's speed shown by the IEC HDLC setup
    0-0:22.0.0.255; ``inactivity_timeout_s`` (s): idle time after which a session is dropped;
    ``optical``: the mode E parameters shown by the IEC local port setup 0-0:20.0.0.255 (None: not
    the optical port); ``events``: sink of security and communication events (None: log only);
    ``lockout``: when repeated authentication failures lock a client SAP out of this link;
    ``legal``: the meter's legal-time rules (those of the clock 0-0:1.0.0.255), by which a profile
    range bound sent without deviation is read as local time (None: as UTC); ``event_window_s``
    (s): the window of the events limited by :class:`~meterd.cosem.event_limit.EventLimiter`.
    """

    link: LinkKind = "wrapper"
    link_name: str = ""
    server_sap: int = 1
    max_pdu: int = 1024
    associations: tuple[AssociationConfig, ...] = DEFAULT_ASSOCIATIONS
    registry: ObjectRegistry | None = None
    hdlc_params: HdlcParameters | None = None
    baud: int = 9600
    inactivity_timeout_s: float = 120.0
    optical: OpticalSetup | None = None
    events: EventSink | None = None
    lockout: LockoutPolicy = LockoutPolicy()
    legal: LegalTimeSource | None = None
    event_window_s: float = 60.0

    def __post_init__(self) -> None:
        if self.link not in LINK_KINDS:
            raise CosemError(f"unknown link type {self.link!r}")
        if not self.link_name:
            object.__setattr__(self, "link_name", self.link)

    @property
    def hdlc_setup(self) -> HdlcSetup | None:
        """What the IEC HDLC setup 0-0:22.0.0.255 shows on an HDLC link; None on the wrapper."""
        if self.link != "hdlc":
            return None
        p = self.hdlc_params or HdlcParameters()
        return HdlcSetup(baud=self.baud, max_info_tx=p.max_info_tx, max_info_rx=p.max_info_rx,
                         inactivity_s=int(self.inactivity_timeout_s), device_address=p.physical_address or 0,
                         inter_octet_ms=round(p.inter_octet_s * 1000),
                         window_tx=p.window_tx, window_rx=p.window_rx)
