"""``meterd check-config`` checks everything ``meterd run`` needs, one line per problem naming the
file, the key and the reason (exit 2); ``meterd run`` given the same configuration switches a
failing interface (a serial port, the DLMS keys) off with one line and runs on, or stops with one
line and exit 2 on a configuration error."""

from __future__ import annotations

import contextlib
import io
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from meterd.app.main import main
from tests.dlms_fakes import make_keys
from tests.meterd_process import REPO, MeterdProcess
from tests.simmeter import sim_config_file


def check(config: Path, state: Path) -> tuple[int, list[str], str]:
    """``meterd check-config`` in-process: exit status, the lines on stderr, stdout."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check-config", "--config", str(config), "--state-dir", str(state)])
    return code, err.getvalue().splitlines(), out.getvalue()


def sim_config(tmp_path: Path, extra: str = "", **replacements: str) -> Path:
    return sim_config_file(tmp_path, extra, **replacements)


def pi_config(tmp_path: Path) -> Path:
    """config/pi.toml without its serial devices (the CIU on a pty pair), so only the key files
    are at stake."""
    text = (REPO / "config" / "pi.toml").read_text()
    for key, value in (("hdlc_port", '""'), ("optical_port", '""'), ("tcp_port", "0"), ("port", '""')):
        text, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert count == 1, key
    path = tmp_path / "pi.toml"
    path.write_text(text)
    return path


def one_problem(code: int, lines: list[str], config: Path, key: str, *words: str) -> str:
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert str(config) in lines[0] and key in lines[0], lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_a_clean_simulated_meter_passes_and_missing_keys_are_made_later(tmp_path: Path) -> None:
    code, lines, out = check(sim_config(tmp_path), tmp_path / "state")
    assert (code, lines) == (0, []) and out.strip().endswith(": ok")
    assert not (tmp_path / "state").exists()  # the check made nothing


def test_off_where_a_device_is_expected_is_a_config_error_for_both_commands(tmp_path: Path) -> None:
    config = sim_config(tmp_path, hdlc_port='"off"')
    code, lines, _ = check(config, tmp_path / "state")
    one_problem(code, lines, config, "dlms.hdlc_port", "'off'", "device")
    proc = subprocess.run([sys.executable, "-m", "meterd", "run", "--config", str(config), "--state-dir",
                           str(tmp_path / "state"), "--speed", "0"], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == lines


@pytest.mark.parametrize("kind", ["missing", "regular file", "pty without RS-485"])
def test_a_serial_port_that_cannot_serve_is_named(tmp_path: Path, kind: str) -> None:
    master = slave = -1
    if kind == "missing":
        device, why = str(tmp_path / "ttyNONE"), "no such device"
    elif kind == "regular file":
        device, why = str(tmp_path / "plain"), "not a serial port"
        Path(device).write_text("")
    else:
        master, slave = os.openpty()
        device, why = os.ttyname(slave), "kernel RS-485 mode unavailable"
    try:
        config = sim_config(tmp_path, hdlc_port=f'"{device}"')
        code, lines, _ = check(config, tmp_path / "state")
        one_problem(code, lines, config, "dlms.hdlc_port", device, why)
        if slave >= 0:  # the optical port takes no RS-485 mode: the same pty is fine there
            config = sim_config(tmp_path, optical_port=f'"{device}"')
            assert check(config, tmp_path / "state")[:2] == (0, [])
    finally:
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)


def test_ciu_port_value_and_device(tmp_path: Path) -> None:
    config = sim_config(tmp_path, port='"ttyAMA5"')
    one_problem(*check(config, tmp_path / "state")[:2], config, "ciu.port", "'ttyAMA5'", "device path")
    missing = tmp_path / "ttyCIU"
    config = sim_config(tmp_path, port=f'"{missing}"')
    one_problem(*check(config, tmp_path / "state")[:2], config, "ciu.port", str(missing), "no such device")
    config = sim_config(tmp_path, port='"off"')
    assert check(config, tmp_path / "state")[:2] == (0, [])


def test_key_files_must_be_private_and_valid(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    config = sim_config(tmp_path)
    keys = state / "dlms-keys.toml"
    make_keys(keys).save()
    assert check(config, state)[:2] == (0, [])
    keys.chmod(0o644)
    one_problem(*check(config, state)[:2], config, "dlms.keys_file", str(keys), "too open")
    keys.write_text("[reader]\n")
    keys.chmod(0o600)
    one_problem(*check(config, state)[:2], config, "dlms.keys_file", str(keys))
    keys.unlink()
    sts = state / "sts-keys.toml"
    sts.write_text("[decoder]\n")
    sts.chmod(0o640)
    one_problem(*check(config, state)[:2], config, "payment.keys_file", str(sts), "too open")
    sts.unlink()
    pair = state / "ciu-pair.key"
    pair.write_text("not hex\n")
    pair.chmod(0o600)
    one_problem(*check(config, state)[:2], config, "ciu.key_file", str(pair), "64 hex digits")
    pair.write_text("ab" * 32 + "\n")
    pair.chmod(0o604)
    one_problem(*check(config, state)[:2], config, "ciu.key_file", str(pair), "too open")
    pair.chmod(0o600)
    assert check(config, state)[:2] == (0, [])


def test_a_real_meter_needs_its_provisioned_keys_but_not_a_pair_key(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = pi_config(tmp_path)
    code, lines, _ = check(config, state)
    assert code == 2 and len(lines) == 2, lines
    assert "dlms.keys_file" in lines[0] and "no such file" in lines[0] and str(config) in lines[0]
    assert "payment.keys_file" in lines[1] and "tokens would be refused" in lines[1]
    state.mkdir()
    make_keys(state / "dlms-keys.toml").save()
    (state / "sts.db").write_bytes(b"")  # a commissioned decoder needs its keys file no more
    assert check(config, state)[:2] == (0, [])


def test_a_state_directory_that_is_a_file_is_named(tmp_path: Path) -> None:
    config = sim_config(tmp_path)
    (tmp_path / "state").write_text("")
    one_problem(*check(config, tmp_path / "state")[:2], config, "storage.state_dir", "not a directory")


def test_a_tcp_port_in_use_is_named_unless_this_state_directorys_meter_holds_it(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        busy = other.getsockname()[1]
        (tmp_path / "a").mkdir()
        config = sim_config(tmp_path / "a", tcp_port=str(busy))
        one_problem(*check(config, tmp_path / "state")[:2], config, "dlms.tcp_port", f"port {busy}", "in use")
        meter = MeterdProcess(tmp_path / "meter")  # runs on its own state directory, a port of its own
        try:
            port = meter.dlms_port
            config = sim_config(tmp_path / "a", tcp_port=str(port))
            assert check(config, meter.state)[:2] == (0, [])  # checking the running meter's own config
            code, lines, _ = check(config, tmp_path / "elsewhere")  # another state directory: in use
            one_problem(code, lines, config, "dlms.tcp_port", f"port {port}", "in use")
            config = sim_config(tmp_path / "a", tcp_port=str(busy))  # held, but not by this meter
            one_problem(*check(config, meter.state)[:2], config, "dlms.tcp_port", "not by the meter",
                        str(meter.proc.pid))
        finally:
            assert meter.stop() == 0


def test_run_switches_a_failing_serial_port_off_and_meters_on(tmp_path: Path) -> None:
    missing = tmp_path / "ttyNONE"
    meter = MeterdProcess(tmp_path, hdlc_port=f'"{missing}"', optical_port='""')
    try:
        view = meter.status()
        assert "dlms_tcp" in view["links"]
        hdlc = view["interfaces"]["dlms_hdlc"]
        assert hdlc["state"] == "off" and "no such device" in hdlc["reason"] and str(missing) in hdlc["what"]
        assert view["interfaces"]["dlms_tcp"]["state"] == "on"
        assert view["energy"]["total"]["active_import_wh"] >= 0
        table = subprocess.run([sys.executable, "-m", "meterd.app.meterctl", "status", "--socket", meter.socket],
                               capture_output=True, text=True, cwd=REPO, timeout=60).stdout
        interfaces = table.split("\nInterfaces\n", 1)[1].splitlines()
        row = next(line for line in interfaces if line.strip().startswith("dlms_hdlc "))
        assert " off since " in row and "no such device" in row, table
    finally:
        assert meter.stop() == 0
    stderr = meter.proc.stderr.read().decode() if meter.proc.stderr else ""
    assert "Traceback" not in stderr
    switched = [line for line in stderr.splitlines() if " is off: " in line]
    assert len(switched) == 1 and "DLMS HDLC" in switched[0] and str(missing) in switched[0], stderr


def test_run_switches_the_dlms_server_off_on_unusable_keys_and_meters_on(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    bad = state / "open-keys.toml"
    make_keys(bad).save()
    bad.chmod(0o644)
    meter = MeterdProcess(tmp_path, keys_file='"open-keys.toml"')
    try:
        view = meter.status()
        dlms = view["interfaces"]["dlms"]
        assert dlms["state"] == "off" and "too open" in dlms["reason"] and str(bad) in dlms["reason"]
        assert "dlms_tcp" not in view["links"] and "dlms_hdlc" not in view["links"]
        assert (state / "energy.db").exists()  # the meter was built and meters
    finally:
        assert meter.stop() == 0
    stderr = meter.proc.stderr.read().decode() if meter.proc.stderr else ""
    assert "Traceback" not in stderr
    switched = [line for line in stderr.splitlines() if " is off: " in line]
    assert len(switched) == 1 and "DLMS server" in switched[0] and "too open" in switched[0], stderr


def test_a_port_that_passed_the_check_but_fails_to_open_switches_its_link_off(tmp_path: Path, caplog) -> None:
    """The device changed between the check and the start (or refuses a setting the check only
    read): one line, the link off on the interface board (tried again later); nothing is raised."""
    import asyncio
    import dataclasses
    import logging

    from meterd.app.features import dlms
    from meterd.services.interfaces import InterfaceBoard
    from tests.simmeter import SimMeter

    plain = tmp_path / "plain"
    plain.write_text("")
    meter = SimMeter(tmp_path / "state")
    try:
        cfg = meter.daemon.cfg
        cfg = dataclasses.replace(cfg, dlms=dataclasses.replace(cfg.dlms, tcp_host="", hdlc_port=str(plain),
                                                                optical_port=""))
        ctx = dataclasses.replace(meter.daemon.context(), cfg=cfg)

        async def start_and_close() -> None:
            await dlms.start(ctx)
            for link in ctx.links:
                await link.close()

        with caplog.at_level(logging.ERROR):
            asyncio.run(start_and_close())
        state = meter.service(InterfaceBoard).state("dlms_hdlc")
        assert state is not None and not state.on and str(plain) in state.reason
        lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(lines) == 1 and lines[0].startswith("DLMS HDLC link (RS-485) on ") and " is off: " in lines[0]
    finally:
        meter.close()
