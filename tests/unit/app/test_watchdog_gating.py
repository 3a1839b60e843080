"""systemd's watchdog is kicked only while the metering loop ticks on time (fake notifier, fake time)."""

from __future__ import annotations

from tests.fakes import ManualMono
from tests.simmeter import SimMeter


class FakeNotifier:
    watchdog_interval_s = 1.0

    def __init__(self) -> None:
        self.pings = 0
        self.statuses: list[str] = []

    def watchdog(self) -> bool:
        self.pings += 1
        return True

    def status(self, status: str) -> bool:
        self.statuses.append(status)
        return True


def test_ping_only_while_the_metering_loop_is_healthy(tmp_path):
    meter = SimMeter(tmp_path / "state")
    try:
        daemon = meter.daemon
        loop = daemon.metrology
        assert loop is not None
        notifier = FakeNotifier()
        mono = ManualMono(500.0)
        daemon.notifier = notifier  # type: ignore[assignment]
        daemon.mono = mono
        loop.mono = mono
        daemon._last_ping_s = mono()

        mono.advance(1.0)
        daemon.step()  # inline: the cycle itself is the metering loop
        assert notifier.pings == 1 and notifier.statuses[-1].startswith("metering:")

        loop.period_s = 3600.0  # the thread runs but its first tick is an hour (real time) away
        loop.start()
        try:
            mono.advance(1.0)
            daemon.apply()  # the event loop's half, as in the threaded loop
            assert notifier.pings == 2
            mono.advance(3 * 3600.0)  # no tick for more than three periods: stalled
            daemon.apply()
            daemon.apply()
            assert notifier.pings == 2 and not daemon.metering_healthy()
            loop.tick()  # a tick on time again
            mono.advance(1.0)
            daemon.apply()
            assert notifier.pings == 3
        finally:
            loop.stop()
        mono.advance(1.0)
        daemon.apply()  # the thread is gone: no ping
        assert notifier.pings == 3 and not daemon.metering_healthy()
    finally:
        meter.close()
