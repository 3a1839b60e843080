"""The bridge firmware (firmware/waveform-bridge): its framing code, built for this machine, makes
frames the meter's decoder takes, with the set indices, flags and samples the document gives; the
RP2040 image builds, with a boot2 the boot ROM accepts and a vector table where boot2 jumps."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from meterd.pq.bridge_frames import (
    FLAG_OVERRUN,
    FLAG_RESTART,
    FLAG_SYNC_LOST,
    BridgeDecoder,
    BridgeFrame,
)

FIRMWARE = Path(__file__).resolve().parents[3] / "firmware" / "waveform-bridge"


def sample(k: int, c: int) -> int:
    """What frame_selftest puts in set k, channel c (a 24-bit two's complement value)."""
    return (k * 7 + c) * 1021 - 4194304


def decode_sets(frame: BridgeFrame) -> list[list[int]]:
    out = []
    for s in range(frame.n_sets):
        row = []
        for c in range(7):
            raw = int.from_bytes(frame.payload[s * 21 + 3 * c: s * 21 + 3 * c + 3], "big")
            row.append(raw - (1 << 24) if raw & 0x800000 else raw)
        out.append(row)
    return out


def test_firmware_framing_is_what_the_meter_decodes(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    exe = tmp_path / "frame_selftest"
    subprocess.run([cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                    str(FIRMWARE / "frame.c"), str(FIRMWARE / "frame_selftest.c")], check=True, timeout=60)
    wire = subprocess.run([str(exe)], check=True, capture_output=True, timeout=10).stdout
    dec = BridgeDecoder()
    frames = [e for e in dec.feed(wire) if isinstance(e, BridgeFrame)]
    assert dec.crc_errors == dec.header_errors == dec.bytes_discarded == 0
    got = [(f.seq, f.first_index, f.n_sets, f.flags, f.sync_losses, f.dma_ctrl) for f in frames]
    assert got == [(0, 0, 32, FLAG_RESTART, 0, 0xFE44), (1, 32, 8, 0, 0, 0xFE44),
                   (2, 41, 32, FLAG_SYNC_LOST, 1, 0xFE44), (3, 73, 28, 0, 1, 0xFE44),
                   (4, 143, 32, FLAG_OVERRUN, 1, 0xFE44), (5, 175, 32, 0, 1, 0xFE44)]
    for f in frames:
        assert decode_sets(f) == [[sample(f.first_index + s, c) for c in range(7)] for s in range(f.n_sets)]


def boot2_crc(data: bytes) -> int:
    """The RP2040 boot ROM's check of boot2: CRC-32/MPEG-2 (not reflected, no final XOR)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def test_rp2040_image_builds_with_a_valid_boot2_and_uf2(tmp_path: Path) -> None:
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc is not installed (make installs gcc-arm-none-eabi)")
    subprocess.run(["make", "-s", "-C", str(FIRMWARE), f"BUILD={tmp_path}", f"{tmp_path}/waveform-bridge.uf2"],
                   check=True, capture_output=True, timeout=120)
    image = (tmp_path / "waveform-bridge.bin").read_bytes()
    assert struct.unpack("<I", image[252:256])[0] == boot2_crc(image[:252])
    sp, reset = struct.unpack("<II", image[256:264])
    assert sp == 0x20040000 and reset & 1 and 0x10000100 < reset < 0x10000000 + len(image)
    uf2 = (tmp_path / "waveform-bridge.uf2").read_bytes()
    assert len(uf2) == 512 * ((len(image) + 255) // 256)
    for n in range(len(uf2) // 512):
        block = uf2[512 * n: 512 * (n + 1)]
        magic0, magic1, flags, addr, size, number, total, family = struct.unpack("<8I", block[:32])
        assert (magic0, magic1, flags, size, number, family) == (0x0A324655, 0x9E5D5157, 0x2000, 256, n, 0xE48BFF56)
        assert addr == 0x10000000 + 256 * n and total == len(uf2) // 512
        assert block[32:32 + 256] == image[256 * n: 256 * (n + 1)].ljust(256, b"\x00")
        assert struct.unpack("<I", block[508:])[0] == 0x0AB16F30
