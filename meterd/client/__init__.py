"""A small typed client of meterd's API, for ``meterctl`` and for test rigs.

    from meterd.client import MeterClient

    meter = MeterClient("http://127.0.0.1:8080", token="…")   # or MeterClient("var/run-sim/meterd.sock")
    meter.sim_set(phase="A", voltage_v=230, current_a=10, power_factor="0.5L")
    with meter.watch_events() as events:
        meter.sim_fault("miso_high", duration_s=5)
        entry = events.wait_for("metrology_fault", timeout_s=10)

Requests go over the standard library's HTTP client (UNIX socket, HTTP or HTTPS); the event
stream is a WebSocket (aiohttp) read on a thread of its own.
"""

from meterd.client.events import EventWatcher
from meterd.client.sync import ApiRefused, MeterClient

__all__ = ["ApiRefused", "EventWatcher", "MeterClient"]
