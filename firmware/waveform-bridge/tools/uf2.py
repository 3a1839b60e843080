#!/usr/bin/env python3
"""Finish the bridge image: write boot2's CRC-32 (bytes 252-255) and convert the binary to UF2.

Usage: uf2.py IMAGE.bin OUT.uf2 (the binary is updated in place with the CRC).

boot2 CRC (RP2040 boot ROM): CRC-32 with polynomial 0x04C11DB7, initial value 0xFFFFFFFF, not
reflected, no final XOR, over the first 252 bytes, stored little-endian after them.
UF2 (Microsoft's USB flashing format): 512-byte blocks of 256 payload bytes each, with the RP2040
family id 0xE48BFF56, written to flash from 0x10000000.
"""

import struct
import sys

FLASH = 0x10000000
FAMILY_RP2040 = 0xE48BFF56
MAGIC0, MAGIC1, MAGIC_END = 0x0A324655, 0x9E5D5157, 0x0AB16F30
FLAG_FAMILY = 0x00002000


def boot2_crc(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def to_uf2(image: bytes) -> bytes:
    blocks = [image[i:i + 256] for i in range(0, len(image), 256)]
    out = bytearray()
    for n, chunk in enumerate(blocks):
        head = struct.pack("<IIIIIIII", MAGIC0, MAGIC1, FLAG_FAMILY, FLASH + 256 * n, 256, n, len(blocks),
                           FAMILY_RP2040)
        out += head + chunk.ljust(476, b"\x00") + struct.pack("<I", MAGIC_END)
    return bytes(out)


def main() -> None:
    bin_path, uf2_path = sys.argv[1], sys.argv[2]
    image = bytearray(open(bin_path, "rb").read())
    if len(image) < 256:
        sys.exit("image shorter than boot2")
    image[252:256] = struct.pack("<I", boot2_crc(bytes(image[:252])))
    open(bin_path, "wb").write(image)
    open(uf2_path, "wb").write(to_uf2(bytes(image)))


if __name__ == "__main__":
    main()
