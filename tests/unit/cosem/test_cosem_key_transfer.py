"""Key transfer of one association (meterd.cosem.key_transfer): staging checks every wrapped key
before any is kept; applying installs them in the key ring one by one; a release discards them."""

from __future__ import annotations

from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from gurux_dlms.enums import ErrorCode

from meterd.cosem.key_transfer import KeyTransfer
from tests.dlms_fakes import make_keyring

NEW_GUK, NEW_AK = bytes(range(16, 32)), bytes(range(32, 48))


def _wrapped(ring, key: bytes) -> bytes:
    return aes_key_wrap(ring.current.master_key, key)


def test_staged_keys_change_nothing_until_applied():
    ring = make_keyring()
    old = ring.current
    transfer = KeyTransfer(ring)
    assert transfer.stage([(0, _wrapped(ring, NEW_GUK)), (2, _wrapped(ring, NEW_AK))]) == int(ErrorCode.OK)
    assert transfer.pending
    assert ring.current == old
    assert list(transfer.apply()) == ["global_unicast_key", "authentication_key"]
    assert (ring.current.global_unicast_key, ring.current.authentication_key) == (NEW_GUK, NEW_AK)
    assert not transfer.pending
    assert list(transfer.apply()) == []


def test_one_bad_item_refuses_the_whole_transfer():
    ring = make_keyring()
    transfer = KeyTransfer(ring)
    good = (0, _wrapped(ring, NEW_GUK))
    assert transfer.stage([good, (1, _wrapped(ring, NEW_AK))]) == int(ErrorCode.READ_WRITE_DENIED)  # key id 1
    assert transfer.stage([good, (2, aes_key_wrap(bytes(16), NEW_AK))]) == int(ErrorCode.OTHER_REASON)
    assert transfer.stage([good, (2, b"\x00" * 7)]) == int(ErrorCode.OTHER_REASON)  # not a wrap at all
    assert transfer.stage([good, (2, _wrapped(ring, bytes(32)))]) == int(ErrorCode.OTHER_REASON)  # not suite 0
    assert not transfer.pending


def test_a_new_transfer_replaces_the_staged_one_and_discard_forgets_it():
    ring = make_keyring()
    transfer = KeyTransfer(ring)
    transfer.stage([(0, _wrapped(ring, NEW_GUK))])
    transfer.stage([(2, _wrapped(ring, NEW_AK))])
    assert list(transfer.apply()) == ["authentication_key"]
    transfer.stage([(0, _wrapped(ring, NEW_GUK))])
    transfer.discard()
    assert list(transfer.apply()) == []
    assert ring.current.global_unicast_key != NEW_GUK


def test_the_master_key_unwraps_with_the_key_in_force_when_staged():
    ring = make_keyring()
    transfer = KeyTransfer(ring)
    new_master = bytes(range(48, 64))
    transfer.stage([(3, _wrapped(ring, new_master))])
    list(transfer.apply())
    assert ring.current.master_key == new_master
    assert transfer.stage([(0, aes_key_wrap(new_master, NEW_GUK))]) == int(ErrorCode.OK)
