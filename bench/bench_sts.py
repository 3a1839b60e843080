"""STS decoding speed: ciphers per block and whole-token processing (name: value unit)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import tempfile
import time
from pathlib import Path

from meterd.core.clock import UTC, SimClock
from meterd.core.sts import KeyRegister, StsConfig, TokenProcessor, commission, decode_token
from meterd.core.sts.cipher import core_cipher_factory
from meterd.core.sts.misty1 import Misty1Cipher
from meterd.core.sts.sta import StaCipher
from meterd.core.sts.vending import credit_token
from meterd.services.payment import PaymentService
from meterd.services.sts_crypto import sts_cipher_factory
from meterd.store.sts_store import SqliteStsStore

DK_EA07 = bytes.fromhex("87f3ecbb2e46b48f")  # public STS test decoder key
DK_EA11 = bytes.fromhex("f94b6ed353c3bfdb113e2d3a7ea3c41d")


def per_call_us(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e6


def main() -> None:
    block = bytes.fromhex("492083c0ae7ce455")
    sta = StaCipher(DK_EA07)
    misty = Misty1Cipher(DK_EA11)
    print(f"sta_decrypt_block: {per_call_us(lambda: sta.decrypt_block(block), 5000):.1f} us")
    print(f"misty1_decrypt_block: {per_call_us(lambda: misty.decrypt_block(block), 5000):.1f} us")
    print(f"decode_token_ea07: {per_call_us(lambda: decode_token('70630503470028726114', DK_EA07, 7, 2014), 3000):.1f} us")
    print(f"decode_token_ea11: {per_call_us(lambda: decode_token('59386323472137426967', DK_EA11, 11), 3000):.1f} us")
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStsStore(Path(tmp) / "sts.db")
        commission(store, KeyRegister(DK_EA07, 7, 2, 1, 1, 255, 201457, 2014))
        proc = TokenProcessor(store, sts_cipher_factory, SimClock(dt.datetime(2026, 1, 1, tzinfo=UTC)),
                              StsConfig())
        cipher = core_cipher_factory(7, DK_EA07)
        tokens = [credit_token(cipher, 6_000_000 + i, 10) for i in range(200)]
        start = time.perf_counter()
        for tok in tokens:
            proc.submit(tok)
        elapsed = time.perf_counter() - start
        print(f"submit_accept_with_fsync: {elapsed / len(tokens) * 1e3:.2f} ms")
        start = time.perf_counter()
        for tok in tokens:
            proc.submit(tok)  # all Used: no write
        print(f"submit_reject_used: {(time.perf_counter() - start) / len(tokens) * 1e6:.1f} us")
        store.close()
    payment_feature()


def payment_feature() -> None:
    """The prepayment feature on a whole simulated meter: credit per cycle, a token end to end."""
    import sys
    from unittest import mock

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from meterd.app.features.payment import PaymentSection, sim_key_register
    from tests import simmeter

    original = simmeter.sim_config

    def with_payment(sd: Path, **sections: object) -> object:
        cfg = original(sd, **sections)  # type: ignore[arg-type]
        return dataclasses.replace(cfg, features={**cfg.features, "payment": PaymentSection(mode="prepaid")})

    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(simmeter, "sim_config", with_payment):
        meter = simmeter.SimMeter(Path(tmp))
        service = meter.service(PaymentService)
        result = meter.meter.cycle()
        utc = meter.clock.utc()  # type: ignore[union-attr]
        cost = per_call_us(lambda: service.on_cycle(utc, result.deltas, meter.meter.registers, result.reading), 5000)
        print(f"payment_on_cycle: {cost:.1f} us")
        cipher = sts_cipher_factory(7, sim_key_register(PaymentSection()).key)
        tokens = [credit_token(cipher, 7_000_000 + i, 10) for i in range(50)]
        start = time.perf_counter()
        for tok in tokens:
            service.submit_token(tok, "bench")
        print(f"submit_token_feature_end_to_end: {(time.perf_counter() - start) / len(tokens) * 1e3:.2f} ms")
        meter.close()


if __name__ == "__main__":
    main()
