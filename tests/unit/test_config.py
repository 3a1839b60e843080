"""Configuration errors name the file, the key and the reason."""

from __future__ import annotations

import subprocess
import sys

import pytest

from meterd.app.config import load_config
from meterd.core.errors import ConfigError


def write(tmp_path, text):
    p = tmp_path / "m.toml"
    p.write_text(text)
    return p


def test_default_sim_config_loads():
    cfg = load_config("config/sim.toml")
    assert cfg.hardware.backend == "sim"
    assert cfg.frontend.meter_constant_imp_per_kwh == 10_000


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[meter]\nvoltage = 230\n", "meter.voltage", "unknown key"),
        ("[metre]\n", "metre", "unknown section"),
        ("[meter]\nnominal_voltage_v = 1000\n", "meter.nominal_voltage_v", "above the maximum"),
        ("[meter]\nfrequency_hz = 55\n", "meter.frequency_hz", "not one of"),
        ("[meter]\ncycle_s = \"fast\"\n", "meter.cycle_s", "expected float"),
        ("[frontend]\nmeter_constant_imp_per_kwh = 3200\n", "frontend.meter_constant_imp_per_kwh", "whole number"),
        ("[meter\n", "-", "invalid TOML"),
    ],
)
def test_bad_config_is_named(tmp_path, text, key, reason):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert err.value.key == key
    assert reason in err.value.reason
    assert str(err.value).startswith(str(tmp_path))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


def test_daemon_exits_2_with_one_line(tmp_path):
    p = write(tmp_path, "[meter]\nnominal_voltage_v = -5\n")
    proc = subprocess.run([sys.executable, "-m", "meterd", "run", "--config", str(p)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "meter.nominal_voltage_v" in lines[0] and str(p) in lines[0] and "below the minimum" in lines[0]
