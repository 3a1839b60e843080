"""Configuration errors name the file, the key and the reason."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys

import pytest

from meterd.app.features import load_config
from meterd.app.main import main
from meterd.core import register_range
from meterd.core.errors import ConfigError


def write(tmp_path, text):
    p = tmp_path / "m.toml"
    p.write_text(text)
    return p


def test_default_sim_config_loads():
    cfg = load_config("config/sim.toml")
    assert cfg.hardware.backend == "sim"
    assert cfg.frontend.meter_constant_imp_per_kwh == 1000
    assert cfg.frontend.energy_lsb_cf == 0.1 and cfg.frontend.current_scale == 2


def test_shipped_constants_hold_a_minute_at_imax():
    """1000 imp/kWh at 0.1 CF: 100 mWh per count, 6553.5 Wh per register, 247.8 s at
    3 × 1.15 × 230 V × 120 A = 95.22 kW; the Pi configuration ships the same."""
    for path in ("config/sim.toml", "config/pi.toml"):
        fe = load_config(path).frontend
        assert (fe.meter_constant_imp_per_kwh, fe.energy_lsb_cf, fe.current_scale) == (1000, 0.1, 2)
    assert register_range.milli_per_count(1000, 0.1) == 100
    assert register_range.capacity_wh(100) == pytest.approx(6553.5)
    assert register_range.worst_case_power_w(230.0, 100.0) == pytest.approx(95_220.0)
    assert register_range.hold_time_s(6553.5, 95_220.0) == pytest.approx(247.77, abs=0.01)
    assert register_range.hold_problem(1000, 0.1, 230.0, 100.0) == ""


@pytest.mark.parametrize(
    ("text", "numbers"),
    [   # the old defaults: 1 mWh per count, 65.535 Wh, 2.5 s at 95.22 kW
        ("[frontend]\nmeter_constant_imp_per_kwh = 10000\nenergy_lsb_cf = 0.01\n",
         ("1 mWh per count", "65.535 Wh", "95.22 kW", "2.5 s", "60 s")),
        # 10 mWh per count: 655.35 Wh, 24.8 s
        ("[frontend]\nmeter_constant_imp_per_kwh = 10000\nenergy_lsb_cf = 0.1\n",
         ("10 mWh per count", "655.35 Wh", "24.8 s")),
        # the shipped constants on a meter rated 400 V, 200 A: 6553.5 Wh at 331.2 kW is 71.2 s (fine);
        # 1000 imp/kWh at 0.01 CF is 10 mWh: 655.35 Wh, 7.1 s
        ("[meter]\nnominal_voltage_v = 400\nmax_current_a = 200\n[frontend]\nenergy_lsb_cf = 0.01\n"
         "current_scale = 4\n", ("10 mWh per count", "655.35 Wh", "331.20 kW", "7.1 s")),
    ],
)
def test_constants_that_saturate_within_a_minute_are_refused(tmp_path, text, numbers):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert err.value.key == "frontend.meter_constant_imp_per_kwh"
    for number in numbers:
        assert number in err.value.reason, err.value.reason


def test_a_current_scale_too_small_for_imax_is_refused(tmp_path):
    """k = 1: the chip would see 120 A, past its 65.535 A Irms register."""
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "[frontend]\ncurrent_scale = 1\n"))
    assert err.value.key == "frontend.current_scale"
    assert "120.0 A" in err.value.reason and "65.535 A" in err.value.reason
    # a 40 A meter needs no divider
    cfg = load_config(write(tmp_path, "[meter]\nmax_current_a = 40\n[frontend]\ncurrent_scale = 1\n"))
    assert cfg.frontend.current_scale == 1


def test_a_current_scale_without_integer_pl_constant_is_refused(tmp_path):
    """450e9 / (1000 × 7) is not an integer."""
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "[frontend]\ncurrent_scale = 7\n"))
    assert err.value.key == "frontend.current_scale" and "7000" in err.value.reason


def test_led_follows_the_meter_constant(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "[meter]\nled_imp_per_kwh = 10000\n"))
    assert err.value.key == "meter.led_imp_per_kwh"
    assert "frontend.meter_constant_imp_per_kwh = 1000:" in err.value.reason


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


def check_config(path, *options: str) -> subprocess.CompletedProcess[str]:
    """``meterd check-config --config PATH`` through the command line's entry point, in-process;
    the file alone (``--file-only``) unless ``options`` are given."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check-config", "--config", str(path), *(options or ("--file-only",))])
    return subprocess.CompletedProcess(["meterd", "check-config"], code, out.getvalue(), err.getvalue())


def test_check_config_process_exits_2_with_one_line(tmp_path):
    p = write(tmp_path, '[sim]\npower_factor = "2.0X"\n')
    proc = subprocess.run([sys.executable, "-m", "meterd", "check-config", "--config", str(p), "--file-only"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(p) in lines[0] and "sim.power_factor" in lines[0] and "2.0X" in lines[0]


def assert_one_line_error(path, key: str, *words: str) -> str:
    """``meterd check-config`` exits 2 with one line naming the file, the key and the reason."""
    proc = check_config(path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(path) in lines[0] and key in lines[0], lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(("value", "reason"), [("2.0X", "expected like"), ("1.5", "within 0..1"),
                                               ("", "expected like")])
def test_sim_power_factor_is_checked_with_the_simulator_parser(tmp_path, value, reason):
    assert_one_line_error(write(tmp_path, f'[sim]\npower_factor = "{value}"\n'), "sim.power_factor", reason)


@pytest.mark.parametrize("value", ["1", "0.5L", "0.8C", "-0.5L", ".9l"])
def test_good_sim_power_factors_pass(tmp_path, value):
    proc = check_config(write(tmp_path, f'[sim]\npower_factor = "{value}"\n'))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(": ok")


def test_missing_scenario_file_is_a_config_error(tmp_path):
    missing = tmp_path / "nonexistent.toml"
    assert_one_line_error(write(tmp_path, f'[sim]\nscenario = "{missing}"\n'), "sim.scenario",
                          str(missing), "file not found")


def test_invalid_scenario_file_is_a_config_error(tmp_path):
    bad = tmp_path / "bad-scenario.toml"
    bad.write_text('[[events]]\nat_s = 1\nphase = "L1"\nvoltage = 100\n')
    line = assert_one_line_error(write(tmp_path, f'[sim]\nscenario = "{bad}"\n'), "sim.scenario",
                                 "invalid scenario", str(bad))
    assert "voltage" in line


def test_scenario_needs_the_sim_back_end(tmp_path):
    good = tmp_path / "s.toml"
    good.write_text("[[events]]\nat_s = 1\nfrequency_hz = 49.9\n")
    assert load_config(write(tmp_path, f'[sim]\nscenario = "{good}"\n')).sim.scenario == str(good)
    with pytest.raises(ConfigError, match="backend") as err:
        load_config(write(tmp_path, f'[hardware]\nbackend = "pi"\n[sim]\nscenario = "{good}"\n'))
    assert err.value.key == "sim.scenario"


@pytest.mark.parametrize(
    ("text", "key", "other", "pin"),
    [
        ("[supervision]\ncover_pin = 17\n", "supervision.cover_pin", "hardware.led_pin", 17),
        ("[hardware]\nled_pin = 13\n", "supervision.magnet_pin", "hardware.led_pin", 13),
        ("[load_control]\nbutton_pin = 6\n", "load_control.button_pin", "hardware.power_fail_pin", 6),
        ("[load_control]\nchangeover_grid_pin = 5\nchangeover_solar_pin = 16\n",
         "load_control.changeover_grid_pin", "supervision.cover_pin", 5),
        ('[display]\nkind = "st7567"\ngpio_rst = 22\n', "display.gpio_rst", "load_control.set_pin", 22),
        ('[display]\ngpio_light = 27\n', "display.gpio_light", "load_control.feedback_pin", 27),
        ("[dlms]\nhdlc_de_pin = 17\n", "dlms.hdlc_de_pin", "hardware.led_pin", 17),
        ('[ciu]\ndirection = "kernel"\nde_pin = 6\n', "ciu.de_pin", "hardware.power_fail_pin", 6),
    ],
)
def test_a_gpio_pin_wired_twice_is_named(tmp_path, text, key, other, pin):
    assert_one_line_error(write(tmp_path, text), key, other, f"GPIO {pin} ")


def test_unwired_pins_and_a_display_without_lcd_never_clash(tmp_path):
    # -1 is "not wired" (two changeover pins and the backlight share it); a PNG display drives no line
    text = ('[load_control]\nbutton_pin = -1\nfeedback_pin = -1\n'
            '[display]\nkind = "png"\ngpio_dc = 17\ngpio_light = -1\n')
    proc = check_config(write(tmp_path, text))
    assert proc.returncode == 0, proc.stderr


def test_shipped_configs_have_no_pin_clash():
    for name in ("config/sim.toml", "config/pi.toml"):
        proc = check_config(name)
        assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(("text", "key"), [('[dlms]\nhdlc_direction = "auto"\nhdlc_de_pin = 7\n', "hdlc_de_pin = 7"),
                                          ("[ciu]\nde_pin = 7\n", "de_pin = 7")])
def test_an_auto_direction_transceiver_has_no_de_pin(tmp_path, text, key):
    assert_one_line_error(write(tmp_path, text), key, "auto-direction transceiver has no DE pin")


def test_a_real_meters_kernel_rs485_port_names_its_de_pin(tmp_path):
    base = '[hardware]\nbackend = "pi"\n[dlms]\nhdlc_port = "/dev/ttyAMA3"\n'
    assert_one_line_error(write(tmp_path, base), "dlms.hdlc_de_pin", "GPIO", 'hdlc_direction = "auto"')
    assert_one_line_error(write(tmp_path, '[ciu]\nport = "/dev/ttyAMA5"\ndirection = "kernel"\n'), "ciu",
                          "needs de_pin")
    for text in (base + "hdlc_de_pin = 7\n", base + 'hdlc_direction = "auto"\n'):
        assert load_config(write(tmp_path, text)).dlms.hdlc_port == "/dev/ttyAMA3"
