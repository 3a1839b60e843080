"""End to end with real processes: a credit token typed on the simulated CIU's keypad is applied by meterd.

``meterd run`` (simulated hardware, payment feature commissioned with the public STS test vending
key) opens the CIU cable as a pty pair paced at 9600 Bd and pre-pairs the simulated CIU;
``python -m ciu --port <ciu_link> --state-dir <state>/ciu`` is the CIU process exactly as
``make run`` starts it. The token goes in through the CIU's keypad socket; the new credit must
appear on the CIU's result screen, in the meter's credit view, and over DLMS (credit object
0-0:19.10.0.255 and account 0-0:19.0.0.255 read by a gurux client on the wrapper, reader SAP 17).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gurux_dlms.objects import GXDLMSAccount, GXDLMSCredit

from ciu.keys import send_keys
from meterd.app.features import load_config
from meterd.core.sts import dkga04
from meterd.core.sts.codec import BASE_DATES
from meterd.core.sts.keys import TEST_VENDING_KEY_DKGA04
from meterd.core.sts.vending import credit_token
from meterd.services.sts_crypto import sts_cipher_factory
from tests.dlms_gurux_client import GuruxSession, make_client
from tests.dlms_harness import SocketIO
from tests.meterd_process import REPO, MeterdProcess

pytest.importorskip("meterd.app.features.payment")


def vend_credit(config: Path, kwh_tenths: int, when: dt.datetime) -> str:
    """A credit token for the simulated meter, made with the public STS test vending key."""
    section = load_config(config).feature("payment")
    cipher = sts_cipher_factory(section.ea, dkga04(TEST_VENDING_KEY_DKGA04, section.key_inputs()))
    tid = int((when - BASE_DATES[section.base_date]).total_seconds() // 60)
    return credit_token(cipher, tid, kwh_tenths)


class CiuProcess:
    """``python -m ciu`` as ``make run`` starts it; stdout and stderr lines are collected."""

    def __init__(self, port: str, state_dir: Path) -> None:
        env = dict(os.environ, SDL_VIDEODRIVER="dummy")
        self.proc = subprocess.Popen([sys.executable, "-m", "ciu", "--port", port, "--state-dir", str(state_dir)],
                                     cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, needle: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if needle in line:
                    return line
            assert self.proc.poll() is None, "\n".join(self.lines)
            time.sleep(0.05)
        raise AssertionError(f"CIU never printed {needle!r}:\n" + "\n".join(self.lines))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=15)
        self._reader.join(timeout=5)
        return code


def wait_until(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def read_credit_over_dlms(meter: MeterdProcess) -> tuple[int, int]:
    """Current credit amount (Wh) of 0-0:19.10.0.255 and available credit of 0-0:19.0.0.255."""
    io = SocketIO(meter.dlms_port)
    session = GuruxSession(make_client(17), io.send, io.receive)
    session.connect()
    try:
        credit = GXDLMSCredit("0.0.19.10.0.255")
        account = GXDLMSAccount("0.0.19.0.0.255")
        return int(session.read(credit, 2)), int(session.read(account, 5))
    finally:
        session.close()


def test_token_typed_on_the_ciu_reaches_meterd_and_comes_back_on_both_ends(tmp_path: Path) -> None:
    meter = MeterdProcess(tmp_path, speed="1")
    ciu = None
    try:
        links = meter.view["links"]
        ciu_state = meter.state / "ciu"
        assert links["ciu_keypad"] == str(ciu_state / "keys.sock")
        assert links["ciu_screens"] == str(ciu_state / "screens" / "screen.png")
        assert (ciu_state / "pair.key").stat().st_mode & 0o777 == 0o600  # pre-paired, private
        ciu = CiuProcess(links["ciu_link"], ciu_state)
        ciu.wait_line(f"CIU keypad: {ciu_state / 'keys.sock'}", 20.0)
        ciu.wait_line(f"CIU screens: {ciu_state / 'screens' / 'screen.png'}", 5.0)
        wait_until(lambda: meter.api("GET", "/ciu")[1]["state"] == "up", 20.0, "the CIU link")
        ciu.wait_line("link=up", 10.0)

        before_wh, before_available = read_credit_over_dlms(meter)
        meter_utc = dt.datetime.fromisoformat(meter.view["utc"])
        token = vend_credit(meter.config, 100, meter_utc - dt.timedelta(hours=1))  # 10.0 kWh
        send_keys(links["ciu_keypad"], token + "#")

        wait_until(lambda: meter.api("GET", "/ciu")[1]["tokens"] == 1, 20.0, "the token at the meter")
        result = ciu.wait_line("screen result", 10.0)
        assert "'accepted': True" in result and "'code': 'accepted'" in result, result
        view = meter.api("GET", "/status")[1]
        after_wh, after_available = read_credit_over_dlms(meter)
        # 10 kWh arrived; at 3.45 kW the meter consumed a few Wh meanwhile
        assert 9_900 <= after_wh - before_wh <= 10_000, (before_wh, after_wh)
        assert 9_900 <= after_available - before_available <= 10_000
        # the CIU shows what the meter holds (kWh, 2 decimals), within the consumption since then
        shown = float(result.split("'credit': '")[1].split("'")[0])
        assert abs(shown * 1000 - after_wh) < 50, (shown, after_wh)
        assert "'amount': '10'" in result or "'amount': '9.99'" in result, result
        assert view["ciu"]["tokens"] == 1 and view["ciu"]["state"] == "up"
        assert (ciu_state / "screens" / "screen.png").stat().st_size > 0

        # the same token again: refused as used, credit unchanged
        send_keys(links["ciu_keypad"], token + "#")
        wait_until(lambda: meter.api("GET", "/ciu")[1]["tokens"] == 2, 20.0, "the repeated token")
        ciu.wait_line("'code': 'used'", 10.0)
        again_wh, _ = read_credit_over_dlms(meter)
        assert again_wh <= after_wh
        pair_key = (ciu_state / "pair.key").read_text().strip()
        assert not any(pair_key in line for line in ciu.lines)  # the key never appears in logs
    finally:
        if ciu is not None:
            assert ciu.stop() == 0
        assert meter.stop() == 0
