"""The register map as data and the CS0–CS3 checksum."""

from __future__ import annotations

from hw.atm90e36 import regmap as rm


def test_checksum_matches_published_values() -> None:
    assert rm.block_checksum(rm.BLOCKS[0], rm.default_block_values(rm.BLOCKS[0])) == 0x421C
    assert rm.block_checksum(rm.BLOCKS[3], rm.default_block_values(rm.BLOCKS[3])) == 0x8EBE
    assert rm.checksum([0x0861, 0xC468, 0x1087, 0x1500] + [0] * 6) == 0x4741
    assert rm.checksum([0] * 12) == 0
    for block in rm.BLOCKS:
        assert rm.REGISTERS[block.cs_addr].reset == rm.block_checksum(block, rm.default_block_values(block))


def test_reserved_addresses_absent_and_known_names() -> None:
    for reserved in (0x05, 0x06, 0x1E, 0x2F, 0x3C, 0x4E, 0x58, 0x70, 0x97, 0x9A, 0xE8, 0xEC, 0xF0, 0xF4, 0x1C6):
        assert reserved not in rm.REGISTERS
    assert rm.addr("PMConfig") == 0x1B
    assert rm.addr("UrmsA") == 0xD9 and rm.REGISTERS[0xD9].lsb_addr == 0xE9
    assert rm.REGISTERS[0xDD].lsb_addr == 0xED          # current LSB base is 0xEC + phase
    assert rm.addr("AV_HR5") == 0x163 and rm.addr("AI_THD") == 0x11F
    assert rm.REGISTERS[0xB0].unit == 4.0 and rm.REGISTERS[0xB1].unit == 1.0
    assert rm.energy_addr("ANenergy", "B", "F") == 0xA6


def test_read_to_clear_set_and_blocks() -> None:
    read_to_clear = {0x01, 0x02} | set(range(0x80, 0x95)) | set(range(0xA0, 0xB0))
    assert set(rm.READ_TO_CLEAR) == read_to_clear
    assert [r.addr for r in rm.REGISTERS.values() if r.block == 1] == list(range(0x41, 0x4D))
    assert rm.block_of(0x47) is rm.BLOCKS[1] and rm.block_of(0x40) is None


def test_signed_decoding() -> None:
    assert rm.to_signed16(0xFFFF) == -1 and rm.to_signed16(0x8000) == -32768 and rm.to_signed16(0x7FFF) == 32767
    assert rm.REGISTERS[0xBD].decode(0xFC18) == -1000      # PF −1.000
    assert rm.REGISTERS[0xD9].decode(0xFC18) == 0xFC18     # Urms is unsigned
    assert rm.to_signed32(0xFFFF8000) == -32768
