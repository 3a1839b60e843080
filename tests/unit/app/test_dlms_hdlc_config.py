"""``[dlms]`` HDLC settings: the physical address, the negotiation maxima and the inactivity time-out
reach the links' HDLC parameters; addresses the bus cannot carry are refused."""

from __future__ import annotations

import pytest

from meterd.app.features import load_config
from meterd.app.features.dlms import hdlc_parameters
from meterd.core.errors import ConfigError


def _load(tmp_path, text):
    p = tmp_path / "m.toml"
    p.write_text("[dlms]\n" + text)
    return load_config(p)


def test_shipped_configs_address_the_bus_meter_and_negotiate_2030_and_7():
    pi = load_config("config/pi.toml").dlms
    params = hdlc_parameters(pi)
    assert params.physical_address == 16
    assert (params.max_info_tx, params.max_info_rx, params.window_tx, params.window_rx) == (2030, 2030, 7, 7)
    assert params.inactivity_s == 120.0 and params.inter_octet_s == 0.5
    assert hdlc_parameters(pi, point_to_point=True).physical_address is None  # the optical port
    assert hdlc_parameters(load_config("config/sim.toml").dlms).physical_address is None


def test_settings_reach_the_parameters(tmp_path):
    cfg = _load(tmp_path, "hdlc_address = 0x1234\nhdlc_max_info_rx = 512\nhdlc_window_tx = 3\n"
                          "hdlc_inactivity_s = 30\n").dlms
    params = hdlc_parameters(cfg)
    assert (params.physical_address, params.max_info_rx, params.window_tx, params.inactivity_s) == (
        0x1234, 512, 3, 30.0)


@pytest.mark.parametrize("text,key", [
    ("hdlc_address = 0x0F\n", "dlms"), ("hdlc_address = 0x7F\n", "dlms"), ("hdlc_address = 0x4000\n", "dlms"),
    ("hdlc_max_info_rx = 2031\n", "dlms.hdlc_max_info_rx"), ("hdlc_window_tx = 8\n", "dlms.hdlc_window_tx"),
])
def test_settings_outside_the_profile_are_refused(tmp_path, text, key):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    assert err.value.key.startswith(key)


def test_tcp_limits_and_their_events(tmp_path):
    from meterd.core import event_codes
    from meterd.runtime.dlms_tcp import ASSOCIATION_TIMEOUT, DISPLACED, REFUSED

    cfg = _load(tmp_path, "tcp_max_connections = 4\ntcp_association_timeout_s = 5\n").dlms
    assert (cfg.tcp_max_connections, cfg.tcp_association_timeout_s) == (4, 5.0)
    defaults = load_config("config/sim.toml").dlms
    assert (defaults.tcp_max_connections, defaults.tcp_association_timeout_s) == (8, 10.0)
    for name in (ASSOCIATION_TIMEOUT, DISPLACED, REFUSED):
        code = event_codes.code(name)
        assert 188 <= code <= 194
        assert event_codes.LogId.SECURITY in event_codes.lookup(code).logs
    with pytest.raises(ConfigError):
        _load(tmp_path, "tcp_max_connections = 0\n")


def test_the_hdlc_setup_object_shows_the_configured_link():
    from meterd.cosem.config import ServerConfig

    params = hdlc_parameters(load_config("config/pi.toml").dlms)
    setup = ServerConfig(link="hdlc", hdlc_params=params, inactivity_timeout_s=params.inactivity_s).hdlc_setup
    assert setup is not None
    assert (setup.max_info_tx, setup.max_info_rx, setup.window_tx, setup.window_rx) == (2030, 2030, 7, 7)
    assert (setup.inter_octet_ms, setup.inactivity_s, setup.device_address) == (500, 120, 16)
