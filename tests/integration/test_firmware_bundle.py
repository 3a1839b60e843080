"""image/rauc/build-bundle.sh with the real rauc: a signed bundle carries the release's version,
the board's compatible string and the metrology identification the meter computes; an
encrypted one (crypt format) reads only with the recipient's private key. Throwaway keys."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from meterd.services.firmware import metrology_from_description
from meterd.store.firmware_store import metrology_digest
from tests.paths import REPO

BUILD = REPO / "image" / "rauc" / "build-bundle.sh"
pytestmark = pytest.mark.skipif(any(shutil.which(p) is None for p in ("rauc", "mksquashfs", "openssl")),
                                reason="needs rauc, mksquashfs and openssl")


def _keys(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.cert.pem", directory / f"{name}.key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj",
                    f"/CN={name}", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def _build(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(BUILD), *args], capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHON": sys.executable})


def _info(bundle: Path, keyring: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rauc", "info", f"--keyring={keyring}", "--output-format=json", *extra, str(bundle)],
                          capture_output=True, text=True, check=False)


def test_signed_and_encrypted_bundles(tmp_path: Path) -> None:
    cert, key = _keys(tmp_path, "signing")
    meter_cert, meter_key = _keys(tmp_path, "meter")
    plain, crypt = tmp_path / "plain.raucb", tmp_path / "crypt.raucb"
    common = ["--version", "2.3.4", "--size-mb", "1", "--cert", str(cert), "--key", str(key)]
    assert _build(*common, "--out", str(plain)).returncode == 0
    info = json.loads(_info(plain, cert).stdout)
    assert (info["version"], info["compatible"]) == ("2.3.4", "pmm1221-rpi4")
    assert metrology_from_description(info["description"]) == ("PMM-CORE 2.3.4", metrology_digest())

    built = _build(*common, "--out", str(crypt), "--encrypt-to", str(meter_cert))
    assert built.returncode == 0, built.stderr
    assert json.loads(_info(crypt, cert, f"--key={meter_key}").stdout)["version"] == "2.3.4"
    assert _info(crypt, cert).returncode != 0  # without the meter's key the manifest stays sealed

    bad = _build("--version", "2.x", "--size-mb", "1", "--out", str(tmp_path / "x.raucb"))
    assert bad.returncode == 2 and "dotted numeric" in bad.stderr
    inside = _build(*common[:4], "--cert", str(cert), "--key", str(REPO / "pyproject.toml"))
    assert inside.returncode == 2 and "inside the source tree" in inside.stderr
