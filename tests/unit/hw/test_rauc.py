"""RAUC's JSON as the client reads it (documents as rauc 1.8 prints them), and its errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hw.errors import HwError
from hw.rauc import BundleUnreadable, RaucClient, RaucError, RaucUnavailable, parse_info, parse_status

STATUS = ('{"compatible":"pmm1221-rpi4","variant":"","booted":"A","boot_primary":"rootfs.1","slots":['
          '{"rootfs.1":{"class":"rootfs","device":"/x/slotB.img","type":"raw","bootname":"B","state":"inactive",'
          '"parent":null,"mountpoint":null,"boot_status":"bad","slot_status":{"bundle":{"compatible":"pmm1221-rpi4",'
          '"version":"1.1.0"},"installed":{"timestamp":"2026-12-04T23:13:58Z","count":1},"status":"ok"}}},'
          '{"rootfs.0":{"class":"rootfs","device":"/x/slotA.img","type":"raw","bootname":"A","state":"booted",'
          '"parent":null,"mountpoint":null,"boot_status":"good","slot_status":{"bundle":{"compatible":null}}}}]}')
INFO = ('{"compatible":"pmm1221-rpi4","version":"0.2.0","description":"metrology_id=PMM-CORE 0.2.0; '
        'metrology_sha256=3d","build":"d4c0382","hooks":[],"images":[{"rootfs":{"variant":null,'
        '"filename":"rootfs.img","checksum":"50","size":1048576,"hooks":[],"adaptive":[]}}]}')


def test_status_names_booted_primary_and_installed_versions() -> None:
    status = parse_status(STATUS)
    assert (status.booted, status.primary, status.compatible) == ("A", "B", "pmm1221-rpi4")
    b = status.slot("B")
    assert b is not None and (b.boot_status, b.bundle_version, b.installed_utc) == ("bad", "1.1.0",
                                                                                   "2026-12-04T23:13:58Z")
    a = status.slot("A")
    assert a is not None and a.state == "booted" and a.bundle_version == ""
    with pytest.raises(RaucError, match="unexpected output"):
        parse_status("{}")


def test_info_reads_the_manifest() -> None:
    info = parse_info(INFO)
    assert (info.compatible, info.version, info.build) == ("pmm1221-rpi4", "0.2.0", "d4c0382")
    assert info.description.startswith("metrology_id=PMM-CORE 0.2.0") and info.images == {"rootfs": 1048576}


def test_errors_are_hw_errors_with_one_line(tmp_path: Path) -> None:
    missing = RaucClient(program=str(tmp_path / "no-rauc"))
    with pytest.raises(RaucUnavailable, match="cannot run") as caught:
        asyncio.run(missing.status())
    assert isinstance(caught.value, HwError) and "\n" not in str(caught.value)
    fake = tmp_path / "rauc"
    fake.write_text("#!/bin/sh\necho 'rauc-Message: reading' >&2\n"
                    "echo 'Invalid bundle format: Signature size (99) exceeds bundle size' >&2\nexit 1\n")
    fake.chmod(0o755)
    bundle = tmp_path / "b.raucb"
    bundle.write_bytes(b"x")
    with pytest.raises(BundleUnreadable) as refused:
        asyncio.run(RaucClient(program=str(fake)).info(bundle))
    assert refused.value.kind == "format" and str(refused.value).startswith("not a complete bundle: Invalid")
    fake.write_text("#!/bin/sh\necho 'signature verification failed: Verify error: self-signed certificate' >&2\n"
                    "exit 1\n")
    with pytest.raises(BundleUnreadable) as unsigned:
        asyncio.run(RaucClient(program=str(fake)).info(bundle))
    assert unsigned.value.kind == "signature"
    with pytest.raises(RaucError, match="mark-good booted: signature"):
        asyncio.run(RaucClient(program=str(fake)).mark("mark-good"))
    # rauc 1.8's message when another process has the bundle open for writing: not the bundle's fault
    fake.write_text("#!/bin/sh\necho 'could not ensure exclusive bundle access (F_SETLEASE): EAGAIN: existing open "
                    "file descriptor' >&2\nexit 1\n")
    with pytest.raises(RaucError, match="open for writing elsewhere") as held:
        asyncio.run(RaucClient(program=str(fake)).info(bundle))
    assert not isinstance(held.value, BundleUnreadable)


def test_manifest_reads_without_verifying(tmp_path: Path) -> None:
    fake = tmp_path / "rauc"
    args = tmp_path / "args"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {args}\necho '{INFO}'\n")
    fake.chmod(0o755)
    bundle = tmp_path / "b.raucb"
    bundle.write_bytes(b"x")
    info = asyncio.run(RaucClient(program=str(fake), keyring=tmp_path / "k.pem").manifest(bundle))
    assert info.compatible == "pmm1221-rpi4" and info.version == "0.2.0"
    assert "--no-verify" in args.read_text().split() and "--keyring" not in args.read_text()
    fake.write_text("#!/bin/sh\necho 'Invalid bundle format: too small' >&2\nexit 1\n")
    with pytest.raises(BundleUnreadable) as refused:
        asyncio.run(RaucClient(program=str(fake)).manifest(bundle))
    assert refused.value.kind == "format"
