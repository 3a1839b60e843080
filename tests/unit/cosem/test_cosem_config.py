"""The settings of one DLMS link (meterd.cosem.config.ServerConfig)."""

from __future__ import annotations

import dataclasses

import pytest

from meterd.cosem.config import ServerConfig
from meterd.cosem.errors import CosemError
from meterd.cosem.objects import HdlcSetup
from meterd.proto.hdlc import HdlcParameters


def test_defaults_are_a_tcp_wrapper_link_named_after_its_framing():
    cfg = ServerConfig()
    assert (cfg.link, cfg.link_name, cfg.server_sap, cfg.max_pdu) == ("wrapper", "wrapper", 1, 1024)
    assert cfg.hdlc_setup is None and cfg.optical is None
    assert ServerConfig(link="hdlc").link_name == "hdlc"
    assert ServerConfig(link="hdlc", link_name="rs485").link_name == "rs485"


def test_unknown_framing_is_refused():
    with pytest.raises(CosemError, match="unknown link type 'udp'"):
        ServerConfig(link="udp")  # type: ignore[arg-type]


def test_it_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ServerConfig().max_pdu = 2048  # type: ignore[misc]


def test_hdlc_setup_shows_the_link_parameters():
    cfg = ServerConfig(link="hdlc", baud=19200, inactivity_timeout_s=90.5,
                       hdlc_params=HdlcParameters(physical_address=0x12, max_info_tx=512, max_info_rx=256))
    assert cfg.hdlc_setup == HdlcSetup(baud=19200, max_info_tx=512, max_info_rx=256, inactivity_s=90,
                                       inter_octet_ms=0, device_address=0x12)
    assert ServerConfig(link="hdlc").hdlc_setup == HdlcSetup(9600, 128, 128, 120, 0, 0)
