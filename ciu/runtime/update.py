"""The CIU's own firmware update: receives the bundle over the link, verifies it, installs it to
the inactive slot with RAUC, tries the new slot once (tryboot), checks itself, confirms or rolls back.

The meter carries the bundle (docs/ciu-link.md, "The CIU's update"); the CIU decides, with the
same rules and the same engine as the meter (docs/firmware.md): RAUC verifies the CMS signature
against the CIU's keyring, :mod:`ciu.core.update_rules` the compatible string and the versions;
``rauc install`` writes the inactive slot and makes it the next *tryboot* slot; the board
reboots with tryboot. In the trial the CIU runs its self-check (the link to the meter paired and
answering, the display and keypad drivers up, its state files readable) and marks the slot good
and active, or bad and reboots: the firmware then starts the old slot, which reports the failed
update. A crash in the trial (a second start in it) fails it at once; a hang ends in the
hardware watchdog's reboot, which the firmware answers with the old slot.

Files, under ``<state_dir>/update/`` (the CIU's data partition, both slots see it):
``bundle.part`` (the octets received, in order; its size is where a transfer resumes),
``offer.json`` (the offer being received), ``trial.json`` (the :class:`TrialRecord` written
before the install) and ``last.json`` (the last update's outcome, reported in CIU_IDENT).

The RAUC calls take seconds; they run on a worker thread, so the loop keeps answering the
meter's polls. Nothing here blocks for more than a file write.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import os
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from ciu.core.update_rules import BootVerdict, Refusal, TrialRecord, UpdatePolicy, boot_verdict, judge
from hw.boot import BootInfo
from hw.errors import HwError
from hw.rauc import BundleInfo, BundleUnreadable, RaucStatus
from hw.source_digest import sources_digest
from meterd.proto.ciu_link import (
    FWU_VERSION,
    CiuIdent,
    FwOffer,
    FwPhase,
    FwState,
    Message,
    MsgKind,
    parse_fw_block,
)

log = logging.getLogger("ciu.update")

SYNC_EVERY = 16  # blocks between fsyncs of the partial bundle (a lost tail is sent again)
SOURCES = ("ciu", "meterd/proto", "hw")  # the CIU's software, digested for its signature
SOURCE_ROOT = Path(__file__).resolve().parents[2]


class Engine(Protocol):
    """The part of :class:`hw.rauc.RaucClient` the CIU uses."""

    async def info(self, bundle: Path) -> BundleInfo: ...

    async def status(self) -> RaucStatus: ...

    async def install(self, bundle: Path) -> None: ...

    async def mark(self, action: str, slot: str = "booted") -> None: ...


class Board(Protocol):
    """Reboots the CIU's board (:class:`hw.boot.PiBoard`; the simulated board in tests)."""

    async def reboot(self, trial: bool) -> None: ...


@dataclass(frozen=True)
class UpdateSettings:
    """``trial_timeout_s`` (s): the self-check must pass within it; ``check_after_s`` (s): how
    long the trial runs before the checks are judged (the link must have come up);
    ``base_version``: the version of a slot RAUC installed nothing into (the factory image)."""

    trial_timeout_s: float = 120.0
    check_after_s: float = 3.0
    base_version: str = "0.1.0"


def software_digest(root: Path = SOURCE_ROOT) -> str:
    """Hex SHA-256 over the CIU's sources (path and content of every ``.py`` file under
    ``ciu``, ``meterd/proto`` and ``hw``, in path order): its firmware signature."""
    return sources_digest(root, SOURCES)


def _write_json(path: Path, doc: dict[str, Any] | None) -> None:
    """Replace ``path`` atomically (write, fsync, rename); None removes it."""
    if doc is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return doc if isinstance(doc, dict) else None


class CiuUpdater:
    """The update agent of the CIU (module docstring). The link client hands it the meter's
    messages (:meth:`on_message`) and sends what it returns and what :meth:`step` returns;
    ``checks`` gives the self-check's results (name -> passed) when asked."""

    def __init__(self, state_dir: Path, engine: Engine, board: Board, boot: BootInfo, policy: UpdatePolicy,
                 checks: Callable[[], dict[str, bool]], mono: Callable[[], float],
                 settings: UpdateSettings | None = None) -> None:
        self.dir = Path(state_dir) / "update"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.engine = engine
        self.board = board
        self.boot = boot
        self.policy = policy
        self.settings = settings or UpdateSettings()
        self._checks = checks
        self._mono = mono
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ciu-update")
        self._job: concurrent.futures.Future[Any] | None = None
        self._job_done: Callable[[Any], list[Message]] | None = None
        self._phase: FwPhase | None = None
        self._offer: FwOffer | None = None
        self._part: Any = None  # the open bundle.part while receiving
        self._unsynced = 0
        self.version = self.settings.base_version
        self.slot = boot.slot
        self.signature = software_digest()
        self.reboot_requested: bool | None = None  # trial flag of a reboot asked for (tests look)
        self._trial_started: float | None = None
        self._reboot_after: float | None = None
        self._reboot_trial = False
        self._outbox: list[Message] = []
        self.ident_sent = False
        self._load_offer()

    # -- files -------------------------------------------------------------------------------

    @property
    def part_path(self) -> Path:
        return self.dir / "bundle.part"

    def _load_offer(self) -> None:
        doc = _read_json(self.dir / "offer.json")
        if doc is not None:
            self._offer = FwOffer(int(doc["transfer"]), str(doc["sha256"]), int(doc["size"]), str(doc["version"]))

    def _trial(self) -> TrialRecord | None:
        doc = _read_json(self.dir / "trial.json")
        return TrialRecord(**doc) if doc is not None else None

    def last(self) -> dict[str, str]:
        """The last update's outcome as CIU_IDENT reports it (empty when none)."""
        doc = _read_json(self.dir / "last.json") or {}
        return {k: str(v) for k, v in doc.items()}

    def _finish(self, record: TrialRecord, outcome: str, detail: str) -> None:
        _write_json(self.dir / "last.json", {"outcome": outcome, "from": record.from_version,
                                             "to": record.to_version, "detail": detail,
                                             "id": f"{record.sha256[:16]}-{outcome}"})
        _write_json(self.dir / "trial.json", None)
        self.ident_sent = False  # the meter hears the outcome with the next identification

    # -- start -------------------------------------------------------------------------------

    def start(self) -> BootVerdict:
        """Judge this boot (run once, before the loop): the running version from RAUC's slot
        status; a trial is counted and its self-check armed; a rolled back trial reported."""
        status = self._run(self.engine.status())
        slot = status.slot(self.boot.slot)
        if slot is not None and slot.bundle_version:
            self.version = slot.bundle_version
        record = self._trial()
        verdict = boot_verdict(record, self.boot.slot, self.boot.trial)
        if record is None:
            return verdict
        if verdict is BootVerdict.TRIAL:
            _write_json(self.dir / "trial.json", asdict(TrialRecord(**{**asdict(record), "starts": record.starts + 1})))
            self._trial_started = self._mono()
            log.info("trial boot of %s in slot %s: self-check in %.0f s", record.to_version, self.boot.slot,
                     self.settings.check_after_s)
        elif verdict is BootVerdict.RETRIAL:
            self._fail_trial(record, "started again during the trial (crash or restart)")
        else:
            detail = record.failure or "the trial boot did not confirm (crash, hang or power cut)"
            log.warning("update to %s rolled back: %s", record.to_version, detail)
            self._finish(record, "rolled_back", detail)
        return verdict

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run an engine call to its end (start-up only; the loop is not running yet)."""
        return asyncio.run(coro)

    # -- messages from the meter -------------------------------------------------------------

    def on_status(self, fields: Mapping[str, object]) -> list[Message]:
        """A STATUS from the meter: identify this CIU once per session when the meter speaks the
        update protocol (``fwu_v``); an old meter never sees CIU_IDENT."""
        version = fields.get("fwu_v")
        if self.ident_sent or not isinstance(version, int) or version < FWU_VERSION:
            return []
        self.ident_sent = True
        return [self.ident().message()]

    def link_up(self) -> None:
        """A new session: identify again at the next STATUS."""
        self.ident_sent = False

    def ident(self) -> CiuIdent:
        last = self.last()
        return CiuIdent(version=self.version, compatible=self.policy.compatible, fw_id=f"PMM-CIU {self.version}",
                        fw_sha256=self.signature, slot=self.slot, outcome=last.get("outcome", ""),
                        outcome_from=last.get("from", ""), outcome_to=last.get("to", ""),
                        outcome_detail=last.get("detail", ""), outcome_id=last.get("id", ""))

    def on_message(self, message: Message) -> list[Message]:
        """FW_OFFER or FW_BLOCK from the meter; returns the messages to send back."""
        if message.kind is MsgKind.FW_OFFER:
            offer = FwOffer.parse(message)
            return [] if offer is None else self._on_offer(offer)
        if message.kind is MsgKind.FW_BLOCK:
            block = parse_fw_block(message)
            return [] if block is None else self._on_block(message.request_id, *block)
        return []

    def _state(self, phase: FwPhase, reason: str = "", detail: str = "") -> FwState:
        offer = self._offer
        assert offer is not None
        return FwState(offer.transfer, phase, self._held(), reason, detail, offer.version)

    def _held(self) -> int:
        try:
            return self.part_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _on_offer(self, offer: FwOffer) -> list[Message]:
        if self._phase in (FwPhase.VERIFYING, FwPhase.REBOOTING) and self._offer is not None:
            return [self._state(self._phase).message()]  # busy with it: say so, the meter waits
        trial = self._trial()
        if trial is not None and trial.sha256 == offer.sha256:  # installed already: the trial decides
            return [FwState(offer.transfer, FwPhase.REBOOTING, 0, detail="installed; in its trial",
                            version=offer.version).message()]
        current = self._offer
        if current is None or current.sha256 != offer.sha256 or current.size != offer.size or self._held() > offer.size:
            self._close_part()
            self.part_path.unlink(missing_ok=True)
            log.info("update offered: %s, %d B", offer.version, offer.size)
        elif self._held():
            log.info("update offered again: %s, resuming at %d of %d B", offer.version, self._held(), offer.size)
        self._offer = offer  # the same bundle keeps its octets under the new transfer number
        _write_json(self.dir / "offer.json", asdict(offer))
        self._phase = FwPhase.RECEIVING
        if self._held() == offer.size:
            return [self._verify()]
        return [self._state(FwPhase.RECEIVING).message()]

    def _on_block(self, transfer: int, offset: int, data: bytes) -> list[Message]:
        offer = self._offer
        if offer is None or transfer != offer.transfer or self._phase is not FwPhase.RECEIVING:
            return []  # a block of an old transfer, or no offer yet: the next offer sorts it out
        held = self._held() if self._part is None else self._part.tell()
        if offset != held or held + len(data) > offer.size:
            return [FwState(offer.transfer, FwPhase.RECEIVING, held, version=offer.version).message()]
        if self._part is None:
            self._part = open(self.part_path, "ab")  # noqa: SIM115  kept open while receiving
        self._part.write(data)
        self._unsynced += 1
        if self._unsynced >= SYNC_EVERY:
            self._sync()
        if self._part.tell() < offer.size:
            return []
        self._close_part()
        return [self._verify()]

    def _sync(self) -> None:
        if self._part is not None:
            self._part.flush()
            os.fsync(self._part.fileno())
        self._unsynced = 0

    def _close_part(self) -> None:
        if self._part is not None:
            self._sync()
            self._part.close()
            self._part = None

    # -- verify and install (worker thread) --------------------------------------------------

    def _verify(self) -> Message:
        offer = self._offer
        assert offer is not None
        self._phase = FwPhase.VERIFYING
        self._submit(self._check_and_install(offer), self._installed)
        return self._state(FwPhase.VERIFYING).message()

    def _submit(self, coro: Coroutine[Any, Any, Any], done: Callable[[Any], list[Message]]) -> None:
        self._job = self._pool.submit(asyncio.run, coro)
        self._job_done = done

    async def _check_and_install(self, offer: FwOffer) -> tuple[str, str, str]:
        """("ok" | "refused" | "failed", reason, detail) of the whole bundle."""
        digest = hashlib.sha256()
        with open(self.part_path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 16), b""):
                digest.update(chunk)
        if digest.hexdigest() != offer.sha256:
            return "refused", "checksum", "the octets received do not have the offered SHA-256"
        try:
            info = await self.engine.info(self.part_path)
        except BundleUnreadable as exc:
            return "refused", "signature" if exc.kind == "signature" else "truncated", str(exc)
        except HwError as exc:
            return "failed", "engine", str(exc)
        refusal: Refusal | None = judge(info.compatible, info.version, self.version, self.policy)
        if refusal is not None:
            return "refused", refusal.reason, refusal.detail
        other = "B" if self.boot.slot == "A" else "A"
        _write_json(self.dir / "trial.json", asdict(TrialRecord(self.version, info.version, other, offer.sha256)))
        try:
            await self.engine.install(self.part_path)
        except HwError as exc:
            _write_json(self.dir / "trial.json", None)
            return "failed", "install", str(exc)
        return "ok", "", f"{self.version} -> {info.version} installed to slot {other}"

    def _installed(self, result: tuple[str, str, str]) -> list[Message]:
        outcome, reason, detail = result
        offer = self._offer
        assert offer is not None
        if outcome == "ok":
            log.info("update %s: trial boot next", detail)
            self.part_path.unlink(missing_ok=True)  # in the slot now
            _write_json(self.dir / "offer.json", None)
            self._phase = FwPhase.REBOOTING
            self._reboot_after = self._mono()
            self._reboot_trial = True
            return [self._state(FwPhase.REBOOTING, detail=detail).message()]
        log.warning("update %s %s: %s %s", offer.version, outcome, reason, detail)
        self._phase = None
        self.part_path.unlink(missing_ok=True)
        _write_json(self.dir / "offer.json", None)
        message = FwState(offer.transfer, FwPhase.REFUSED if outcome == "refused" else FwPhase.FAILED, 0, reason,
                          detail, offer.version).message()
        self._offer = None
        return [message]

    # -- the loop ----------------------------------------------------------------------------

    def step(self, pending: int) -> list[Message]:
        """Call every loop step; ``pending``: the link's unacknowledged messages. Returns
        messages to send; reboots once what it said about the install has been delivered."""
        out: list[Message] = []
        job = self._job
        if job is not None and job.done():
            done = self._job_done
            self._job = self._job_done = None
            assert done is not None
            try:
                out += done(job.result())
            except Exception as exc:  # noqa: BLE001  the engine's failure is a result, never the loop's end
                log.exception("update step failed")
                out += self._failed_job(str(exc))
        if self._trial_started is not None and self._job is None:
            out += self._judge_trial()
        if self._reboot_after is not None and self._job is None and (
                pending == 0 or self._mono() - self._reboot_after > 10.0):
            self._reboot_after = None
            self.reboot_requested = self._reboot_trial
            self._submit(self.board.reboot(self._reboot_trial), lambda _r: [])
        return out

    def _failed_job(self, detail: str) -> list[Message]:
        offer, self._offer, self._phase = self._offer, None, None
        if offer is None:
            return []
        return [FwState(offer.transfer, FwPhase.FAILED, 0, "engine", detail, offer.version).message()]

    def _judge_trial(self) -> list[Message]:
        started = self._trial_started
        assert started is not None
        elapsed = self._mono() - started
        if elapsed < self.settings.check_after_s:
            return []
        results = self._checks()
        failed = sorted(name for name, ok in results.items() if not ok)
        if failed and elapsed < self.settings.trial_timeout_s:
            return []  # not yet: the link may still be coming up
        record = self._trial()
        self._trial_started = None
        if record is None:
            return []
        if failed:
            self._fail_trial(record, "self-check failed: " + ", ".join(failed))
            return []
        self._submit(self._confirm(), lambda _r: self._confirmed(record, sorted(results)))
        return []

    async def _confirm(self) -> None:
        await self.engine.mark("mark-good", "booted")
        await self.engine.mark("mark-active", "booted")

    def _confirmed(self, record: TrialRecord, checks: list[str]) -> list[Message]:
        log.info("update to %s confirmed (%s)", record.to_version, ", ".join(checks))
        self._finish(record, "confirmed", "self-check passed: " + ", ".join(checks))
        return [self.ident().message()]

    def _fail_trial(self, record: TrialRecord, failure: str) -> None:
        """Mark the tried slot bad and reboot plainly: the firmware starts the old slot, which
        reports ``failure``."""
        log.warning("trial of %s failed: %s", record.to_version, failure)
        _write_json(self.dir / "trial.json", asdict(TrialRecord(**{**asdict(record), "failure": failure})))
        self._trial_started = None

        async def mark_bad_and_reboot() -> None:
            try:
                await self.engine.mark("mark-bad", "booted")
            finally:
                await self.board.reboot(False)

        self.reboot_requested = False
        self._submit(mark_bad_and_reboot(), lambda _r: [])

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` (s) for a running RAUC call or reboot; True when none runs."""
        job = self._job
        if job is None:
            return True
        concurrent.futures.wait([job], timeout=timeout_s)
        return job.done()

    def view(self) -> dict[str, Any]:
        """The update state for logs and tests."""
        return {"version": self.version, "slot": self.slot, "phase": self._phase.value if self._phase else "idle",
                "held": self._held(), "offer": asdict(self._offer) if self._offer else None, "last": self.last()}

    def close(self) -> None:
        """Stop the worker (waits for a running RAUC call) and close the partial bundle."""
        self._close_part()
        self._pool.shutdown(wait=True)
