"""Never dark: every interface that fails, at start or while running, is switched off with one
line (no traceback), an INTERFACE_OFF event and its reason under ``interfaces`` in the status;
metering and the other interfaces go on, and a serial port comes back by itself (INTERFACE_ON).

The meter is the daemon's own build (:class:`~tests.simmeter.SimMeter`); its links are started
on a loop of the test's with a configuration naming the device under test: a missing path, a
pseudo-terminal (no RS-485 mode: a USB adapter that refuses the ioctl), a pseudo-terminal held
exclusively by the test (pyserial's ``exclusive=True`` lock, or ``TIOCEXCL``), and a device that
vanishes while served (its pty master closed: reads fail with EIO). The back-off is skipped with
``reopen_now()``: no sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import logging
import os
import termios
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hw.serial_link import open_port
from meterd.app.feature_api import FeatureContext
from meterd.app.features import ciu as ciu_feature
from meterd.app.features import dlms as dlms_feature
from meterd.core import event_codes
from meterd.core.energy import Quantity
from meterd.core.events import EventRecorder
from meterd.runtime import dlms_serial
from meterd.services.interfaces import InterfaceBoard
from meterd.ui.meter_display import MeterDisplay
from tests.simmeter import SimMeter

SERIAL = ("dlms_hdlc", "dlms_optical", "ciu")
WHAT = {"dlms_hdlc": "DLMS HDLC link (RS-485)", "dlms_optical": "DLMS optical port", "ciu": "CIU link"}


class Pty:
    """A pseudo-terminal pair; ``path``: its slave device."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def ptys() -> Iterator[list[Pty]]:
    made: list[Pty] = []
    yield made
    for pty in made:
        pty.close()


@pytest.fixture(autouse=True)
def line_settings_on_a_pty(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pty refuses 7E1 (EINVAL), a UART does not: the optical port's line settings are taken
    as given (what the tests are about is the device, not its framing)."""
    monkeypatch.setattr(dlms_serial, "set_line", lambda port, baud, framing: None)


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[SimMeter]:
    m = SimMeter(tmp_path / "state")
    yield m
    m.close()


def context_for(meter: SimMeter, iface: str, device: str, kernel_rs485: bool = False) -> FeatureContext:
    """The meter's feature context with only ``iface`` configured, on ``device``."""
    cfg = meter.daemon.cfg
    dlms = dataclasses.replace(cfg.dlms, tcp_host="", hdlc_port=device if iface == "dlms_hdlc" else "",
                               optical_port=device if iface == "dlms_optical" else "",
                               hdlc_direction="kernel" if kernel_rs485 else "auto",
                               hdlc_de_pin=7 if kernel_rs485 else -1)
    features = dict(cfg.features)
    if iface == "ciu":
        features["ciu"] = dataclasses.replace(cfg.feature("ciu"), port=device,
                                              direction="kernel" if kernel_rs485 else "auto",
                                              de_pin=11 if kernel_rs485 else -1)
    return dataclasses.replace(meter.daemon.context(), cfg=dataclasses.replace(cfg, dlms=dlms, features=features))


async def start(ctx: FeatureContext, iface: str) -> Any:
    """Start ``iface``'s feature; its link (a ``SerialLink`` or ``CiuPortRunner``)."""
    await (ciu_feature.start(ctx) if iface == "ciu" else dlms_feature.start(ctx))
    assert len(ctx.links) == 1
    return ctx.links[0]


def imported_mwh(meter: SimMeter) -> int:
    return meter.meter.registers.get(Quantity.ACTIVE_IMPORT)


def meters_on(meter: SimMeter) -> None:
    """Metering goes on: five more cycles add import energy."""
    before = imported_mwh(meter)
    meter.run(5)
    assert imported_mwh(meter) > before


def interface_events(meter: SimMeter, iface: str) -> list[str]:
    """INTERFACE_OFF / INTERFACE_ON of ``iface`` in the event logs, oldest first."""
    recorder = meter.service(EventRecorder)
    names = {event_codes.code("INTERFACE_OFF"): "off", event_codes.code("INTERFACE_ON"): "on"}
    return [names[e.code] for e in reversed(recorder.recent(200))
            if e.code in names and e.detail.get("interface") == iface]


def status_of(meter: SimMeter, iface: str) -> dict[str, Any]:
    view: dict[str, Any] = meter.daemon.status_extras["interfaces"]()
    return dict(view[iface])


def one_error_line(caplog: pytest.LogCaptureFixture, *words: str) -> str:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].exc_info is None and "Traceback" not in errors[0].getMessage()
    line = errors[0].getMessage()
    for word in words:
        assert word in line, line
    return line


def off_at_start(meter: SimMeter, caplog: pytest.LogCaptureFixture, iface: str, device: str, why: str) -> None:
    status = status_of(meter, iface)
    assert status["state"] == "off" and why in status["reason"] and device in status["what"], status
    one_error_line(caplog, WHAT[iface], device, why, "metering goes on")
    assert interface_events(meter, iface) == ["off"]
    meters_on(meter)


@pytest.mark.parametrize("iface", SERIAL)
def test_a_missing_device_is_off_at_start_and_comes_back_when_it_appears(
        meter: SimMeter, iface: str, tmp_path: Path, ptys: list[Pty], caplog: pytest.LogCaptureFixture) -> None:
    device = tmp_path / "ttyUSB9"

    async def scenario() -> None:
        ctx = context_for(meter, iface, str(device))
        with caplog.at_level(logging.INFO):
            link = await start(ctx, iface)
        off_at_start(meter, caplog, iface, str(device), "no such device")
        assert not link.reopen_now()  # still missing: still off, no second line nor event
        one_error_line(caplog)
        assert interface_events(meter, iface) == ["off"]
        ptys.append(Pty())
        device.symlink_to(ptys[-1].path)  # the adapter is plugged in
        assert link.reopen_now()
        assert status_of(meter, iface)["state"] == "on"
        assert interface_events(meter, iface) == ["off", "on"]
        meters_on(meter)
        await link.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("iface", ["dlms_hdlc", "ciu"])
def test_a_device_that_refuses_the_kernel_rs485_mode_is_off(
        meter: SimMeter, iface: str, ptys: list[Pty], caplog: pytest.LogCaptureFixture) -> None:
    ptys.append(Pty())  # a terminal without the RS-485 ioctl, as a USB RS-485 adapter's driver
    device = ptys[-1].path

    async def scenario() -> None:
        ctx = context_for(meter, iface, device, kernel_rs485=True)
        with caplog.at_level(logging.INFO):
            link = await start(ctx, iface)
        off_at_start(meter, caplog, iface, device, "kernel RS-485 mode unavailable")
        await link.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("how", ["pyserial exclusive", "TIOCEXCL"])
@pytest.mark.parametrize("iface", SERIAL)
def test_a_port_in_use_is_off_and_comes_back_once_released(
        meter: SimMeter, iface: str, how: str, ptys: list[Pty], caplog: pytest.LogCaptureFixture) -> None:
    if how == "TIOCEXCL" and os.geteuid() == 0:
        pytest.skip("TIOCEXCL does not keep root out")
    ptys.append(Pty())
    pty = ptys[-1]
    device = pty.path

    class Holder:
        """Another process's hold on the port, and its release."""

        def __init__(self) -> None:
            self.port = open_port(device, 9600, exclusive=True) if how == "pyserial exclusive" else None
            if self.port is None:
                fcntl.ioctl(pty.slave, termios.TIOCEXCL)  # the tty refuses further opens (EBUSY)

        def close(self) -> None:
            if self.port is not None:
                self.port.close()
            else:
                fcntl.ioctl(pty.slave, termios.TIOCNXCL)

    holder = Holder()

    async def scenario() -> None:
        ctx = context_for(meter, iface, device)
        with caplog.at_level(logging.INFO):
            link = await start(ctx, iface)
        off_at_start(meter, caplog, iface, device, "in use by another process")
        holder.close()
        assert link.reopen_now()
        assert status_of(meter, iface)["state"] == "on"
        assert interface_events(meter, iface) == ["off", "on"]
        await link.close()

    try:
        asyncio.run(scenario())
    finally:
        holder.close()


@pytest.mark.parametrize("iface", SERIAL)
def test_a_device_that_vanishes_while_served_is_off_and_comes_back(
        meter: SimMeter, iface: str, tmp_path: Path, ptys: list[Pty], caplog: pytest.LogCaptureFixture) -> None:
    device = tmp_path / "ttyUSB0"
    ptys.append(Pty())
    device.symlink_to(ptys[-1].path)

    async def scenario() -> None:
        ctx = context_for(meter, iface, str(device))
        with caplog.at_level(logging.INFO):
            link = await start(ctx, iface)
            assert status_of(meter, iface)["state"] == "on" and interface_events(meter, iface) == []
            os.close(ptys[-1].master)  # unplugged: the device's reads fail (EIO)
            for _ in range(200):  # the loop hears it at its next turn; no sleeping
                if status_of(meter, iface)["state"] == "off":
                    break
                await asyncio.sleep(0)
        status = status_of(meter, iface)
        assert status["state"] == "off" and status["reason"], status
        one_error_line(caplog, WHAT[iface], str(device), "metering goes on")
        assert interface_events(meter, iface) == ["off"]
        meters_on(meter)
        ptys.append(Pty())
        device.unlink()
        device.symlink_to(ptys[-1].path)  # plugged in again
        assert link.reopen_now()
        assert status_of(meter, iface)["state"] == "on"
        assert interface_events(meter, iface) == ["off", "on"]
        meters_on(meter)
        await link.close()

    asyncio.run(scenario())


def test_one_failing_port_leaves_the_others_on(meter: SimMeter, tmp_path: Path, ptys: list[Pty],
                                               caplog: pytest.LogCaptureFixture) -> None:
    ptys.append(Pty())
    cfg = meter.daemon.cfg
    dlms = dataclasses.replace(cfg.dlms, tcp_host="127.0.0.1", tcp_port=0, hdlc_port=str(tmp_path / "ttyNONE"),
                               optical_port=ptys[-1].path, hdlc_direction="auto")
    ctx = dataclasses.replace(meter.daemon.context(), cfg=dataclasses.replace(cfg, dlms=dlms))

    async def scenario() -> None:
        with caplog.at_level(logging.INFO):
            await dlms_feature.start(ctx)
        assert len(ctx.links) == 3
        view = meter.daemon.status_extras["interfaces"]()
        assert {k: v["state"] for k, v in view.items() if k.startswith("dlms")} == {
            "dlms_tcp": "on", "dlms_hdlc": "off", "dlms_optical": "on"}
        one_error_line(caplog, "DLMS HDLC", "no such device")
        meters_on(meter)
        for link in ctx.links:
            await link.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("damage", ["corrupted", "too open"])
def test_unusable_dlms_keys_switch_the_dlms_server_off_and_metering_goes_on(
        tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    state.mkdir()
    keys = state / "dlms-keys.toml"
    keys.write_text("[server\nsystem_title = ")
    keys.chmod(0o600 if damage == "corrupted" else 0o644)
    with caplog.at_level(logging.INFO):
        meter = SimMeter(state)
    try:
        status = status_of(meter, "dlms")
        assert status["state"] == "off" and str(keys) in status["reason"], status
        if damage == "too open":
            assert "too open" in status["reason"]
        one_error_line(caplog, "DLMS server", str(keys), "metering goes on")
        assert interface_events(meter, "dlms") == ["off"]
        ctx = meter.daemon.context()
        asyncio.run(dlms_feature.start(ctx))
        assert ctx.links == []  # no keys: no link of the DLMS server is opened
        meters_on(meter)
    finally:
        meter.close()


def test_a_missing_keys_file_on_the_simulated_meter_still_gets_throwaway_keys(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path / "state")
    try:
        assert (tmp_path / "state" / "dlms-keys.toml").exists()
        assert meter.service(InterfaceBoard).state("dlms") is None  # never off
    finally:
        meter.close()


def test_a_missing_lcd_switches_the_display_off_and_metering_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):  # SPI 6.3: no such device on the test host
        meter = SimMeter(tmp_path / "state", display={"kind": "st7567", "spi_port": 6, "spi_device": 3})
    try:
        status = status_of(meter, "display")
        assert status["state"] == "off" and "/dev/spidev6.3" in status["reason"], status
        one_error_line(caplog, "LCD", "/dev/spidev6.3", "metering goes on")
        assert interface_events(meter, "display") == ["off"]
        assert meter.daemon.registry.find(MeterDisplay) is None
        meters_on(meter)
    finally:
        meter.close()


def test_an_optical_device_that_refuses_the_sign_on_settings_is_off(
        meter: SimMeter, ptys: list[Pty], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pty refuses 7E1 (EINVAL), as a driver that cannot do the sign-on's 300 Bd 7E1 would."""
    from hw.serial_link import set_line

    monkeypatch.setattr(dlms_serial, "set_line", set_line)  # the real one, this time
    ptys.append(Pty())
    device = ptys[-1].path

    async def scenario() -> None:
        ctx = context_for(meter, "dlms_optical", device)
        with caplog.at_level(logging.INFO):
            link = await start(ctx, "dlms_optical")
        off_at_start(meter, caplog, "dlms_optical", device, "300 Bd 7E1 refused")
        await link.close()

    asyncio.run(scenario())


def test_unusable_sts_keys_refuse_tokens_and_metering_goes_on(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    from meterd.services.payment import PaymentService

    state = tmp_path / "state"
    state.mkdir()
    keys = state / "sts-keys.toml"
    keys.write_text("[decoder]\nkey_hex = 'not hex'\n")
    keys.chmod(0o600)
    with caplog.at_level(logging.INFO):
        meter = SimMeter(state)
    try:
        status = status_of(meter, "sts")
        assert status["state"] == "off" and "tokens refused" in status["what"], status
        one_error_line(caplog, "STS token decoder", "not commissioned", "metering goes on")
        assert interface_events(meter, "sts") == ["off"]
        outcome = meter.service(PaymentService).submit_token("0" * 20, "api")
        assert not outcome.accepted and outcome.result == "NotCommissioned"
        meters_on(meter)
    finally:
        meter.close()
