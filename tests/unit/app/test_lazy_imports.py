"""What a configuration does not use is not imported (meterd's resident set): a simulated meter
with no modem starts and runs without dbus_fast (the modem link),
prometheus_client (until /metrics is scraped) and pycryptodome (until a DES token key is used)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.paths import REPO

CODE = """
import sys, tempfile
from pathlib import Path
from tests.simmeter import SimMeter

meter = SimMeter(Path(tempfile.mkdtemp()), power_quality={"enabled": False})
meter.run(3)
lazy = ("dbus_fast", "prometheus_client", "Crypto")
print(" ".join(name for name in lazy if name in sys.modules) or "-")
metrics = list(meter.daemon.api.metrics_registry.collect())
print("prometheus_client" in sys.modules, any(m.name == "meterd_metering_cycles" for m in metrics))
meter.close()
"""


def test_a_simulated_meter_without_modem_imports_no_modem_metrics_or_des_library() -> None:
    proc = subprocess.run([sys.executable, "-c", CODE], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    before, after = proc.stdout.split("\n")[-3:-1]
    assert before == "-"
    assert after == "True True"  # the first scrape imports it and collects the meter's metrics
