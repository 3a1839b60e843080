"""The firmware image transfer of the meter (what COSEM class 18, 0-0:44.0.0.255, serves) and its
scheduled activation (0-0:15.0.2.255), over the update engine's port.

The image comes in blocks (any order, over any link) into an :class:`ImageFiles` store on the data
partition, so a transfer interrupted by a dropped link or a restart of meterd resumes at the first
block not transferred. Verification and activation are the engine's
(:class:`~meterd.services.firmware_port.FirmwareInstaller`): they take seconds, so they run as
tasks (``spawn``) and a request answers :attr:`Answer.BUSY` (DLMS temporary-failure) until the
status tells the outcome; asking again then answers :attr:`Answer.DONE` or :attr:`Answer.REFUSED`.

Status (image_transfer_status, Blue Book): 0 not initiated, 1 initiated, 2 verification initiated,
3 verification successful, 4 verification failed, 5 activation initiated, 6 activation
successful, 7 activation failed. It is kept with the image, so it survives a restart; a restart
during verification or activation returns it to 1 (the engine's task did not finish), and a
restart after a successful activation keeps 6 when the running version is the image's, else 7
(the new slot did not stay: the engine records why); :meth:`ImageTransferService.start` judges
that again once the engine knows the version of the booted slot.

Another device's image (the CIU's): at verification each :class:`~meterd.services.image_target.ImageTarget`
is asked whether the bundle's compatible string is its own; the first that claims it verifies it
and, at activation (method or schedule), takes it over, with ``target`` in the image's state and in
the events 17/231. The image identifier does not choose the target: the signed manifest does. Such
an activation stays at 5 (activation initiated, ``handed``) while the device receives, installs and
tries it, across restarts of meterd; :meth:`ImageTransferService.tick` asks the target each cycle
and sets 6 when the device confirmed the version, 7 when it refused it or rolled back (the target
records those steps in the firmware log). Meanwhile another image may be initiated.

Without an engine (a legitimate configuration) blocks are still received and their continuity
kept, verification answers BUSY with the status left at 1 (the meter cannot verify), activation
answers REFUSED; the log says so once.

Events (firmware log): 230 transfer started (a new identifier), 166 block transfer resumed
(the first block after a restart, or an initiate of the same image), 17 firmware ready (verified),
231 verification failed (the :class:`~meterd.core.firmware.RejectReason`), 165 activation
scheduled (with the next execution time, UTC), 232 activation failed (the engine refused the
image, the engine failed, or the schedule came due without a verified image; a failed install
the engine records itself, :attr:`EngineFailure.recorded`, so it stands once in the log). A
successful activation is the engine's to record: it installs, restarts, and records "firmware
activated" (18) when the new firmware passed its self-check.
"""

from __future__ import annotations

import datetime as _dt
import enum
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from meterd.core.event_codes import EVENT_CODES
from meterd.core.firmware import BundleVerdict, FirmwareIdentity, RejectReason
from meterd.core.legal_time import LegalTime
from meterd.core.ports import EventSink
from meterd.core.single_action import (
    DatePattern,
    ExecutionTime,
    ScheduleError,
    ScheduleRunner,
    SingleActionSchedule,
    TimePattern,
)
from meterd.services.firmware_port import EngineFailure, FirmwareInstaller
from meterd.services.image_target import Delivery, ImageTarget

log = logging.getLogger("meterd.image_transfer")

ACTIVATION_SCRIPTS_LN = "0.0.10.0.107.255"
ACTIVATION_SCRIPT = 1
EV_READY = 17
EV_STARTED, EV_VERIFY_FAILED, EV_ACTIVATION_FAILED = 230, 231, 232
EV_SCHEDULED, EV_RESUMED = 165, 166
MAX_IDENTIFIER = 64  # octets of an image identifier
METER = "meter"  # the image's target when no other target claims it: the meter's own update engine
assert all(c in EVENT_CODES for c in (EV_READY, EV_STARTED, EV_VERIFY_FAILED,
                                      EV_ACTIVATION_FAILED, EV_SCHEDULED, EV_RESUMED))


class Status(enum.IntEnum):
    """image_transfer_status (class 18 attribute 6)."""

    NOT_INITIATED = 0
    INITIATED = 1
    VERIFYING = 2
    VERIFIED = 3
    VERIFY_FAILED = 4
    ACTIVATING = 5
    ACTIVATED = 6
    ACTIVATION_FAILED = 7


class Answer(enum.Enum):
    """The outcome of a request: DLMS success, temporary-failure, other-reason."""

    DONE = "done"
    BUSY = "busy"
    REFUSED = "refused"


class TransferError(Exception):
    """A block or initiate the store refuses (one line saying why)."""


class ImageFiles(Protocol):
    """Where the image is kept (:class:`meterd.store.image_store.ImageStore`)."""

    @property
    def image_path(self) -> Path: ...

    @property
    def state(self) -> dict[str, Any]: ...

    @property
    def complete(self) -> bool: ...

    def current(self) -> tuple[bytes, int, int] | None:
        """(identifier, size, block size) of the transfer in the store, or None."""
        ...

    def start(self, identifier: bytes, size: int, block_size: int, state: dict[str, Any]) -> None:
        """Begin a new transfer (raises TransferError)."""
        ...

    def put(self, number: int, data: bytes) -> None:
        """Store block ``number`` (raises TransferError)."""
        ...

    def transferred(self, number: int) -> bool: ...

    def count(self) -> int: ...

    def first_missing(self) -> int: ...

    def bitmap(self) -> tuple[int, bytes]: ...

    def save_state(self, state: dict[str, Any]) -> None: ...

    def close(self) -> None:
        """Sync and close the image's files (opened again by the next block)."""
        ...


@dataclass(frozen=True)
class ActivateInfo:
    """One entry of image_to_activate_info: size (octets), identification, signature (the
    metrology checksum the engine read from the verified bundle; empty before)."""

    size: int
    identification: bytes
    signature: bytes


Spawn = Callable[[Coroutine[Any, Any, None]], None]


class ImageTransferService:
    """The image transfer and its activation schedule (see module docstring).

    ``installer``: the update engine, or None; ``identity_fallback``: what runs when there is no
    engine; ``block_size`` (octets) for new transfers; ``legal()``: the legal-time rules of the
    activation schedule; ``utc()``: the meter clock; ``spawn(coro)``: runs the engine's tasks
    without blocking the caller; ``targets``: other devices an image may be for (the CIU), asked
    in order at verification (:mod:`meterd.services.image_target`).
    """

    def __init__(self, files: ImageFiles, events: EventSink, utc: Callable[[], _dt.datetime],
                 installer: FirmwareInstaller | None, identity_fallback: FirmwareIdentity, block_size: int,
                 legal: Callable[[], LegalTime], spawn: Spawn, targets: Sequence[ImageTarget] = ()) -> None:
        self.files = files
        self.targets = {t.name: t for t in targets}
        self.events = events
        self.utc = utc
        self.installer = installer
        self.fallback = identity_fallback
        self.block_size = block_size
        self.legal = legal
        self.spawn = spawn
        self._said_no_engine = False
        self._resume_pending = files.current() is not None and files.count() > 0
        state = files.state
        #: the device the image in the store is for: "meter", or a target's name (chosen at verify)
        self.target = str(state.get("target") or METER)
        #: the image was handed to its target, which is delivering it (status 5 until it ends)
        self.handed = bool(state.get("handed"))
        self.status = self._status_at_start(state)
        self.signature = bytes.fromhex(str(state.get("signature", "")))
        self.image_version = str(state.get("version", ""))
        self.runner = ScheduleRunner(self._schedule_of(state.get("schedule")))
        self._due_at = _utc_or_none(state.get("due_at"))  # the next execution, as last computed

    def start(self) -> None:
        """Once the update engine has started (it has asked RAUC what the booted slot holds):
        an image activated before the restart is judged again by the version running now,
        activation successful if it is the image's, else activation failed."""
        if str(self.files.state.get("status", "")) == str(int(Status.ACTIVATED)):
            self.status = self._status_at_start(self.files.state)

    # -- identity ----------------------------------------------------------------------------

    def identity(self) -> FirmwareIdentity:
        """What runs now (1-0:0.2.0.255 / 1-0:0.2.8.255): the engine's word, else the fallback."""
        if self.installer is None:
            return self.fallback
        return self.installer.running()

    # -- attributes --------------------------------------------------------------------------

    def first_not_transferred(self) -> int:
        """image_first_not_transferred_block_number (0 without a transfer)."""
        return self.files.first_missing() if self.files.current() is not None else 0

    def activate_info(self) -> list[ActivateInfo]:
        """image_to_activate_info: the image in the store, once initiated."""
        cur = self.files.current()
        if cur is None or self.status is Status.NOT_INITIATED:
            return []
        return [ActivateInfo(cur[1], cur[0], self.signature)]

    # -- methods -----------------------------------------------------------------------------

    def initiate(self, identifier: bytes, size: int) -> Answer:
        """Method 1: a new image, or the same one again (kept blocks: the transfer resumes).
        While a target delivers the image (status 5, handed) another image may begin: the
        target has its own copy and records its outcome in the firmware log."""
        cur = self.files.current()
        if self.status in (Status.VERIFYING, Status.ACTIVATING) and not (self.handed and cur is not None
                                                                        and cur[0] != identifier):
            return Answer.BUSY
        if not identifier or len(identifier) > MAX_IDENTIFIER:
            log.info("image transfer refused: identifier of %d octets (1..%d)", len(identifier), MAX_IDENTIFIER)
            return Answer.REFUSED
        if self.handed:
            log.warning("image %s: a new transfer while the %s installs %s; its outcome goes to the firmware log",
                        _text(identifier), self.target, self.image_version)
        if cur == (identifier, size, self.block_size) and self.status is not Status.NOT_INITIATED:
            self._set(Status.INITIATED)
            self._resume_pending = False
            if self.files.count():
                self._record(EV_RESUMED, {"identifier": _text(identifier), "first_missing": self.files.first_missing(),
                                          "blocks": self.files.count()})
            log.info("image %s initiated again: %d of its blocks kept", _text(identifier), self.files.count())
            return Answer.DONE
        try:
            self.files.start(identifier, size, self.block_size, {"status": int(Status.INITIATED)})
        except TransferError as exc:
            log.warning("image transfer of %s (%d octets) refused: %s", _text(identifier), size, exc)
            return Answer.REFUSED
        self.status = Status.INITIATED
        self.signature = b""
        self.image_version = ""
        self.target = METER
        self.handed = False
        self._resume_pending = False
        self._save()
        self._record(EV_STARTED, {"identifier": _text(identifier), "size": size, "block_size": self.block_size})
        log.info("image transfer of %s started: %d octets in blocks of %d", _text(identifier), size, self.block_size)
        return Answer.DONE

    def block(self, number: int, data: bytes) -> Answer:
        """Method 2: one block of the image."""
        if self.status in (Status.VERIFYING, Status.ACTIVATING):
            return Answer.BUSY
        if self.status is Status.NOT_INITIATED or self.files.current() is None:
            return Answer.REFUSED
        try:
            self.files.put(number, data)
        except TransferError as exc:
            log.info("image block refused: %s", exc)
            return Answer.REFUSED
        if self._resume_pending:
            self._resume_pending = False
            cur = self.files.current()
            self._record(EV_RESUMED, {"identifier": _text(cur[0]) if cur else "", "block": number,
                                      "blocks": self.files.count()})
        if self.status is not Status.INITIATED:
            self.signature = b""
            self._set(Status.INITIATED)  # a block after verification: the image must be verified again
        return Answer.DONE

    def verify(self) -> Answer:
        """Method 3: verify the complete image (a task: BUSY until the status says)."""
        status = self.status
        if status in (Status.VERIFYING, Status.ACTIVATING):
            return Answer.BUSY
        if status in (Status.VERIFIED, Status.ACTIVATED):
            return Answer.DONE
        if status is Status.VERIFY_FAILED or status is Status.NOT_INITIATED:
            return Answer.REFUSED
        if not self.files.complete:
            log.info("image verification refused: block %d not transferred", self.files.first_missing())
            return Answer.REFUSED
        if self.installer is None and not self.targets:
            self._no_engine()
            return Answer.BUSY
        self._set(Status.VERIFYING)
        self.files.close()  # RAUC reads the bundle only when no process holds it open for writing
        self.spawn(self._verify())
        return Answer.BUSY

    def activate(self, by: str = "client") -> Answer:
        """Method 4 (``by`` "client"), or the activation schedule (``by`` "schedule"): install the
        verified image and restart into it (a task: BUSY until the status says)."""
        status = self.status
        if status in (Status.VERIFYING, Status.ACTIVATING):
            return Answer.BUSY
        if status is Status.ACTIVATED:
            return Answer.DONE
        target = self.targets.get(self.target) if self.target != METER else None
        if target is None:
            self.target = METER  # a target that is no longer configured: the meter's engine judges the image
        engine: FirmwareInstaller | ImageTarget | None = target if target is not None else self.installer
        # a target's image must have been verified for it; the meter's may be verified by activation itself
        ready = status is Status.VERIFIED or (target is None and status in (Status.INITIATED,
                                                                            Status.ACTIVATION_FAILED)
                                              and self.files.complete)
        if engine is None or not ready:
            if engine is None:
                self._no_engine()
            why = "no update engine" if engine is None else f"no verified image (status {int(status)})"
            log.warning("image activation (%s) refused: %s", by, why)
            if by == "schedule":
                self._record(EV_ACTIVATION_FAILED, {"reason": RejectReason.NO_IMAGE.value, "detail": why, "by": by})
            return Answer.REFUSED
        self._set(Status.ACTIVATING)
        self.files.close()
        self.spawn(self._activate(engine, by))
        return Answer.BUSY

    # -- the activation schedule -------------------------------------------------------------

    @property
    def schedule(self) -> SingleActionSchedule:
        """The image activation schedule (0-0:15.0.2.255)."""
        return self.runner.schedule

    def set_schedule(self, schedule: SingleActionSchedule) -> bool:
        """A new activation schedule (persisted); False for another script than activation."""
        if (schedule.script, schedule.selector) != (ACTIVATION_SCRIPTS_LN, ACTIVATION_SCRIPT):
            return False
        self.runner.set_schedule(schedule)
        now = self.utc()
        self.runner.due(now, self.legal())  # computes the next execution from now
        nxt = self.runner.next_utc
        self._due_at = nxt
        self._save()
        if nxt is not None:
            self._record(EV_SCHEDULED, {"at": nxt.isoformat(), "identifier": self._identifier_text()})
            log.info("firmware activation scheduled at %s UTC", nxt.isoformat())
        else:
            log.info("firmware activation schedule cleared")
        return True

    def tick(self) -> None:
        """Each metering cycle: run the activation when the schedule is due (meter clock). An
        execution time that passed while meterd was not running is run at the first cycle. An
        image handed to a target (the CIU): its delivery, until the device confirmed or refused it."""
        self._follow_delivery()
        now = self.utc()
        due = self.runner.due(now, self.legal())
        missed = self._due_at is not None and self._due_at <= now and self.runner.next_utc != self._due_at
        if not (due or missed):
            return
        log.info("activation schedule due%s", "" if due else f" (missed at {self._due_at})")
        self._due_at = self.runner.next_utc
        self._save()
        self.activate(by="schedule")

    # -- tasks -------------------------------------------------------------------------------

    async def _choose_target(self) -> ImageTarget | None:
        """The target whose compatible string the bundle names, or None (the meter's)."""
        for target in self.targets.values():
            try:
                if await target.claims(self.files.image_path):
                    return target
            except Exception:  # a target that cannot read the bundle does not claim it
                log.exception("image target %s could not read the image", target.name)
        return None

    async def _verify(self) -> None:
        target = await self._choose_target()
        self.target = target.name if target is not None else METER
        engine = target if target is not None else self.installer
        try:
            if engine is None:  # only targets configured, and the bundle is for none of them
                verdict = BundleVerdict(None, RejectReason.HARDWARE, "no update engine for the meter, and the bundle"
                                        f" is not for {', '.join(self.targets)}")
            else:
                verdict = await engine.verify(self.files.image_path)
        except Exception as exc:  # an engine failure is a failed verification, never a crash
            log.exception("image verification failed in the update engine")
            verdict = BundleVerdict(None, RejectReason.MALFORMED, f"update engine error: {exc}"[:120])
        where = {} if target is None else {"target": self.target}
        if verdict.ok and verdict.identity is not None:
            self.signature = _checksum_bytes(verdict.identity.metrology_checksum)
            self.image_version = verdict.identity.version
            self._set(Status.VERIFIED)
            running = {"running": self.identity().version} if target is None else where
            self._record(EV_READY, {"identifier": self._identifier_text(), "version": verdict.identity.version,
                                    **running})
            log.info("image %s verified for the %s: version %s", self._identifier_text(), self.target,
                     verdict.identity.version)
        else:
            self._set(Status.VERIFY_FAILED)
            reason = verdict.reason.value if verdict.reason is not None else "unknown"
            self._record(EV_VERIFY_FAILED, {"identifier": self._identifier_text(), "reason": reason,
                                            "detail": verdict.detail, **where})
            log.warning("image %s failed verification for the %s: %s (%s)", self._identifier_text(), self.target,
                        reason, verdict.detail)

    def _follow_delivery(self) -> None:
        """An image a target is delivering: activation successful once the device confirmed the
        version, failed when it refused it or rolled back (the target records those steps)."""
        if self.status is not Status.ACTIVATING or not self.handed:
            return
        target = self.targets.get(self.target)
        delivery = target.delivery(self.image_version) if target is not None else Delivery.FAILED
        if delivery is Delivery.RUNNING:
            return
        self._set(Status.ACTIVATED if delivery is Delivery.DONE else Status.ACTIVATION_FAILED)
        log.log(logging.INFO if delivery is Delivery.DONE else logging.WARNING, "image %s for the %s: %s",
                self.image_version, self.target, "confirmed by the device" if delivery is Delivery.DONE
                else "not installed (refused, failed or rolled back; see the firmware log)")

    async def _activate(self, installer: FirmwareInstaller | ImageTarget, by: str) -> None:
        running = self.identity().version
        try:
            verdict = await installer.activate(self.files.image_path, self.utc())
        except Exception as exc:  # an engine failure is a failed activation, never a crash
            self._set(Status.ACTIVATION_FAILED)
            if isinstance(exc, EngineFailure) and exc.recorded:  # the engine logged 232 with its reason
                log.warning("firmware activation (%s) failed in the update engine: %s", by, exc)
                return
            log.exception("image activation failed in the update engine")
            self._record(EV_ACTIVATION_FAILED, {"reason": "engine", "detail": f"{exc}"[:200], "by": by,
                                                "running": running})
            return
        if verdict.ok and verdict.identity is not None and self.target != METER:
            self.image_version = verdict.identity.version
            self.handed = True
            self._set(Status.ACTIVATING)  # the target records its steps; tick() follows them
            log.warning("firmware %s handed to the %s (by %s)", verdict.identity.version, self.target, by)
        elif verdict.ok and verdict.identity is not None:
            self.image_version = verdict.identity.version
            self.signature = _checksum_bytes(verdict.identity.metrology_checksum)
            self._set(Status.ACTIVATED)
            # the engine records the installation and, once the new firmware passed its self-check,
            # "firmware activated" (18): recorded here as well it would stand twice in the log
            log.warning("firmware %s activated (was %s, by %s); the meter restarts into it",
                        verdict.identity.version, running, by)
        else:
            self._set(Status.ACTIVATION_FAILED)
            reason = verdict.reason.value if verdict.reason is not None else "unknown"
            self._record(EV_ACTIVATION_FAILED, {"reason": reason, "detail": verdict.detail, "by": by,
                                                "running": running})
            log.warning("firmware activation refused: %s (%s)", reason, verdict.detail)

    # -- internals ---------------------------------------------------------------------------

    def _status_at_start(self, state: dict[str, Any]) -> Status:
        if self.files.current() is None:
            return Status.NOT_INITIATED
        try:
            status = Status(int(state.get("status", 1)))
        except ValueError:
            status = Status.INITIATED
        if status is Status.ACTIVATING and self.handed:
            return status  # a target delivers it: tick() follows the delivery
        if status in (Status.VERIFYING, Status.ACTIVATING):
            log.warning("image %s: %s did not finish before the restart; verify it again",
                        self._identifier_text(), "verification" if status is Status.VERIFYING else "activation")
            return Status.INITIATED
        if (status is Status.ACTIVATED and self.installer is not None and self.target == METER
                and self.installer.running().version != str(state.get("version", ""))):
            log.warning("firmware %s was activated but version %s runs: activation failed",
                        state.get("version", ""), self.installer.running().version)
            return Status.ACTIVATION_FAILED
        return status

    def _set(self, status: Status) -> None:
        self.status = status
        if status is not Status.ACTIVATING:
            self.handed = False
        self._save()

    def _save(self) -> None:
        if self.files.current() is None:
            return
        self.files.save_state({"status": int(self.status), "signature": self.signature.hex(),
                               "version": self.image_version, "schedule": _schedule_state(self.runner.schedule),
                               "due_at": self._due_at.isoformat() if self._due_at is not None else None,
                               "target": self.target, "handed": self.handed})

    def _record(self, code: int, detail: dict[str, object]) -> None:
        self.events.record(code, self.utc(), detail)

    def _identifier_text(self) -> str:
        cur = self.files.current()
        return _text(cur[0]) if cur is not None else ""

    def _no_engine(self) -> None:
        if not self._said_no_engine:
            self._said_no_engine = True
            log.warning("no firmware update engine on this meter: images are received but not verified or "
                        "activated")

    @staticmethod
    def _schedule_of(raw: object) -> SingleActionSchedule:
        empty = SingleActionSchedule(ACTIVATION_SCRIPTS_LN, ACTIVATION_SCRIPT)
        if not isinstance(raw, dict):
            return empty
        try:
            times = tuple(ExecutionTime(TimePattern(*t), DatePattern(*d)) for t, d in raw.get("times", []))
            return SingleActionSchedule(ACTIVATION_SCRIPTS_LN, ACTIVATION_SCRIPT, int(raw.get("type", 1)), times)
        except (ScheduleError, TypeError, ValueError):
            log.warning("stored activation schedule unreadable: not scheduled")
            return empty


def _schedule_state(schedule: SingleActionSchedule) -> dict[str, Any]:
    return {"type": schedule.type,
            "times": [[[t.time.hour, t.time.minute, t.time.second, t.time.hundredths],
                       [t.date.year, t.date.month, t.date.day, t.date.weekday]] for t in schedule.times]}


def _utc_or_none(raw: object) -> _dt.datetime | None:
    try:
        value = _dt.datetime.fromisoformat(str(raw)) if raw else None
    except ValueError:
        return None
    return value if value is None or value.tzinfo is not None else None


def _checksum_bytes(hex_text: str) -> bytes:
    try:
        return bytes.fromhex(hex_text)
    except ValueError:
        return hex_text.encode()


def _text(identifier: bytes) -> str:
    """An identifier for the log and events: text when printable ASCII, else hex."""
    try:
        text = identifier.decode("ascii")
    except UnicodeDecodeError:
        return identifier.hex()
    return text if text.isprintable() else identifier.hex()
