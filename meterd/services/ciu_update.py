"""The meter carries the CIU's firmware update over the MCU-CIU link (docs/firmware.md, "The CIU").

An operator (``meterctl firmware install --ciu BUNDLE``, ``POST /ciu/firmware/install``) or the
head end (the DLMS image transfer 0-0:44.0.0.255, through :class:`CiuImageTarget`) hands the
meter a RAUC bundle for the CIU. The meter verifies it first, with the same keyring
mechanism as its own bundles (``rauc info`` against the meter's keyring: the CIU's bundles are
signed by the same release key) and the CIU's rules: the CIU's compatible string
(``[ciu_update] compatible``), a dotted version not below ``min_version`` and, unless
``allow_downgrade``, not older than what the CIU reports running. A refused bundle is never
carried: "CIU firmware refused" (164) with the reason, nothing sent.

A verified bundle is copied to the data partition and carried in FW_BLOCKs of 512 octets
(update protocol 1, docs/ciu-link.md): FW_OFFER names it (SHA-256, size); the CIU answers with
the first octet it does not hold (FW_STATE ``next``), so a transfer interrupted by a line cut, a
restart of meterd or of the CIU goes on from there, never from zero. One block is in flight at
a time and the next one waits for its link acknowledgement and for the line share
(``line_share``: the blocks take at most that part of the line's time; STATUS, TIME and token
results go between them), so the keypad is never starved. The CIU then verifies the bundle
itself (signature against its keyring, compatibility, version), installs it to its inactive
slot, tries it once and reports the outcome with its next identification (CIU_IDENT).

Events (firmware log 0-0:99.98.6.255), the step and the versions (``from``, ``to``) in the
detail: 163 transfer ``started``/``resumed``/``complete``; 164 ``refused`` (by the meter or by
the CIU, ``reason`` and ``detail``) or ``install_failed``; 167 ``installed`` (trial boot next),
``activated`` (self-check passed) or ``rolled_back`` (the old slot runs again, with the failure).
The CIU's running firmware (:class:`CiuFirmware`) is read over DLMS (1-1:0.2.0.255,
1-1:0.2.8.255) and on the meter LCD.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import hashlib
import logging
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from hw.errors import HwError
from hw.rauc import BundleInfo, BundleUnreadable
from meterd.core import event_codes as ec
from meterd.core.clock import Clock
from meterd.core.firmware import BundleVerdict, FirmwareIdentity, RejectReason, version_key
from meterd.core.ports import EventSink
from meterd.proto.ciu_link import (
    FW_BLOCK_BYTES,
    FWU_VERSION,
    CiuIdent,
    FwOffer,
    FwPhase,
    FwState,
    LinkEvent,
    LinkUp,
    Message,
    MessageReceived,
    MonoClock,
    MsgKind,
    fw_block,
)
from meterd.services.firmware_port import EngineFailure
from meterd.services.image_target import Delivery

log = logging.getLogger(__name__)

TRANSFER = ec.BY_NAME["CIU_FIRMWARE_TRANSFER"].code  # 163
REFUSED = ec.BY_NAME["CIU_FIRMWARE_REFUSED"].code  # 164
OUTCOME = ec.BY_NAME["CIU_FIRMWARE_OUTCOME"].code  # 167
FRAME_OVERHEAD = 60  # octets of a FW_BLOCK's frame besides the image octets (header, fields, MAC, CRC, stuffing)


class BundleReader(Protocol):
    """``rauc info`` with the meter's keyring (:class:`hw.rauc.RaucClient`)."""

    async def info(self, bundle: Path) -> BundleInfo: ...


class JobFiles(Protocol):
    """Where the job and the bundle live (:class:`meterd.store.ciu_update_store.CiuUpdateFiles`)."""

    def load(self) -> dict[str, Any]: ...

    def save(self, record: dict[str, Any]) -> None: ...

    def take_bundle(self, source: Path) -> None: ...

    def read_block(self, offset: int, size: int) -> bytes: ...

    def drop_bundle(self) -> None: ...

    @property
    def bundle_path(self) -> Path: ...


class CiuLinkPort(Protocol):
    """The link as the update sees it: send a message, is a session up, how many unacknowledged."""

    def send(self, message: Message) -> None: ...

    def up(self) -> bool: ...

    def pending(self) -> int: ...


@dataclass(frozen=True)
class CiuUpdatePolicy:
    """``compatible``: the CIU's RAUC compatible string; ``min_version``; ``allow_downgrade``;
    ``line_share`` (0..1): the largest part of the line's time the blocks may take; ``baud`` (Bd)."""

    compatible: str = "pmm-ciu-rpi4"
    min_version: str = "0.0.0"
    allow_downgrade: bool = False
    line_share: float = 0.8
    baud: int = 9600


@dataclass(frozen=True)
class CiuFirmware:
    """The CIU's running firmware as it identified itself: ``fw_id`` (1-1:0.2.0.255),
    ``fw_sha256`` (hex, 1-1:0.2.8.255), ``version``, ``slot`` (A/B), ``compatible``."""

    fw_id: str
    fw_sha256: str
    version: str
    slot: str
    compatible: str


@dataclass(frozen=True)
class Verdict:
    """The meter's verdict on a CIU bundle: ``ok`` or ``reason`` with ``detail``; ``version``."""

    ok: bool
    reason: str = ""
    detail: str = ""
    version: str = ""


class CiuUpdateService:
    """Carries a CIU bundle over the link (module docstring)."""

    def __init__(self, link: CiuLinkPort, reader: BundleReader, files: JobFiles, events: EventSink | None,
                 clock: Clock, mono: MonoClock, policy: CiuUpdatePolicy | None = None) -> None:
        self.link = link
        self.reader = reader
        self.files = files
        self.events = events
        self.clock = clock
        self.mono = mono
        self.policy = policy or CiuUpdatePolicy()
        self.record = files.load()
        self.ciu: CiuFirmware | None = None
        if isinstance(self.record.get("ciu"), dict):
            self.ciu = CiuFirmware(**self.record["ciu"])
        self._identified = False  # the CIU identified itself in this session (it knows protocol 1)
        self._offered = False
        self._accepted = False
        self._offset = 0
        self._next_block_mono = float("-inf")
        self.blocks_sent = 0

    # -- the operator ------------------------------------------------------------------------

    @property
    def job(self) -> dict[str, Any]:
        """The running job (empty when none)."""
        job = self.record.get("job")
        return job if isinstance(job, dict) else {}

    def _save(self) -> None:
        self.files.save(self.record)

    def _event(self, code: int, detail: dict[str, object]) -> None:
        if self.events is not None:
            self.events.record(code, self.clock.utc(), detail)

    def _refuse(self, reason: str, detail: str, version: str = "") -> Verdict:
        log.warning("CIU bundle refused (%s): %s", reason, detail)
        self._event(REFUSED, {"step": "refused", "by": "meter", "reason": reason, "detail": detail[:200],
                              "from": self.ciu.version if self.ciu else "", "to": version})
        return Verdict(False, reason, detail, version)

    def running_job(self) -> bool:
        """A job is being carried, installed or tried (another is refused as ``busy``)."""
        return self.job.get("phase") in ("carrying", "installing", "trial")

    async def check(self, bundle: Path) -> Verdict:
        """The meter's verdict on ``bundle`` for the CIU (signature against the keyring, then
        :meth:`judge`); records nothing, carries nothing."""
        if self.ciu is None:
            return Verdict(False, "ciu_unknown", "the CIU has not identified itself (link down, or a CIU without"
                           " the update protocol)")
        if not Path(bundle).is_file():
            return Verdict(False, "no_image", f"no bundle at {bundle}")
        try:
            info = await self.reader.info(Path(bundle))
        except BundleUnreadable as exc:
            return Verdict(False, "signature" if exc.kind == "signature" else "truncated", str(exc))
        except HwError as exc:
            return Verdict(False, "engine", str(exc))
        return self.judge(info)

    async def stage(self, bundle: Path) -> Verdict:
        """Verify ``bundle`` for the CIU and, when it may go, start carrying it (module docstring)."""
        if self.running_job():
            return Verdict(False, "busy", f"a CIU update to {self.job.get('to')} is running ({self.job.get('phase')})")
        verdict = await self.check(bundle)
        if not verdict.ok:
            return self._refuse(verdict.reason, verdict.detail, verdict.version)
        assert self.ciu is not None  # check() refuses while the CIU is unknown
        self.files.take_bundle(Path(bundle))
        digest, size = await asyncio.to_thread(_digest, self.files.bundle_path)
        job = {"transfer": secrets.randbits(31) | 1, "sha256": digest, "size": size, "to": verdict.version,
               "from": self.ciu.version, "phase": "carrying", "started_utc": self.clock.utc().isoformat()}
        self.record["job"] = job
        self._save()
        self._offered = self._accepted = False
        self._offset = 0
        log.info("CIU update %s -> %s: %d B to carry", job["from"], job["to"], size)
        self._event(TRANSFER, {"step": "started", "from": job["from"], "to": job["to"], "size": size})
        return Verdict(True, "", f"version {verdict.version} for {self.policy.compatible}: carrying {size} B to the"
                       " CIU", verdict.version)

    def judge(self, info: BundleInfo) -> Verdict:
        """The CIU's rules on a bundle whose signature holds (the CIU checks them again)."""
        try:
            version = version_key(info.version)
        except ValueError:
            return Verdict(False, "malformed", f"version {info.version!r} is not dotted numeric", info.version)
        if info.compatible != self.policy.compatible:
            return Verdict(False, "hardware", f"bundle is for {info.compatible!r}, the CIU is "
                           f"{self.policy.compatible!r}", info.version)
        if version < version_key(self.policy.min_version):
            return Verdict(False, "too_old", f"version {info.version} is below the minimum {self.policy.min_version}",
                           info.version)
        running = self.ciu.version if self.ciu else ""
        try:
            older = version < version_key(running)
        except ValueError:
            older = False
        if older and not self.policy.allow_downgrade:
            return Verdict(False, "downgrade", f"version {info.version} is older than the CIU's {running}; "
                           "downgrades are off", info.version)
        return Verdict(True, version=info.version)

    # -- the link ----------------------------------------------------------------------------

    def on_events(self, events: list[LinkEvent]) -> None:
        """The link's events of one read or timer tick; then carry on with the transfer."""
        for event in events:
            if isinstance(event, LinkUp):
                self._identified = self._offered = self._accepted = False
            elif isinstance(event, MessageReceived):
                if event.message.kind is MsgKind.CIU_IDENT:
                    self._on_ident(CiuIdent.parse(event.message))
                elif event.message.kind is MsgKind.FW_STATE:
                    state = FwState.parse(event.message)
                    if state is not None:
                        self._on_state(state)
        self._carry()

    def _on_ident(self, ident: CiuIdent) -> None:
        if ident.fwu_v < FWU_VERSION:
            return
        self._identified = True
        self.ciu = CiuFirmware(ident.fw_id, ident.fw_sha256, ident.version, ident.slot, ident.compatible)
        self.record["ciu"] = asdict(self.ciu)
        if ident.outcome and ident.outcome_id and ident.outcome_id != self.record.get("last_outcome_id"):
            self.record["last_outcome_id"] = ident.outcome_id
            step = "activated" if ident.outcome == "confirmed" else ident.outcome
            self._event(OUTCOME, {"step": step, "from": ident.outcome_from, "to": ident.outcome_to,
                                  "running": ident.version, "detail": ident.outcome_detail[:200]})
            job = self.job
            if job and job.get("to") == ident.outcome_to:
                self._end_job(step)
        self._save()

    def _on_state(self, state: FwState) -> None:
        job = self.job
        if not job or state.transfer != job.get("transfer"):
            return
        detail: dict[str, object] = {"from": job.get("from", ""), "to": job.get("to", "")}
        if state.phase is FwPhase.RECEIVING:
            if not self._accepted and state.next > 0:
                self._event(TRANSFER, {"step": "resumed", **detail, "offset": state.next, "size": job["size"]})
            self._accepted = True
            self._offset = state.next
        elif state.phase is FwPhase.VERIFYING:
            if job.get("phase") == "carrying":
                self._event(TRANSFER, {"step": "complete", **detail, "size": job["size"]})
                job["phase"] = "installing"
                self._save()
        elif state.phase is FwPhase.REBOOTING:
            if job.get("phase") != "trial":
                self._event(OUTCOME, {"step": "installed", **detail, "detail": state.detail[:200]})
                job["phase"] = "trial"
                self._save()
        elif state.phase in (FwPhase.REFUSED, FwPhase.FAILED):
            step = "refused" if state.phase is FwPhase.REFUSED else "install_failed"
            self._event(REFUSED, {"step": step, "by": "ciu", **detail, "reason": state.reason,
                                  "detail": state.detail[:200]})
            self._end_job(step)

    def _end_job(self, outcome: str) -> None:
        job = self.job
        job["phase"] = "done"
        job["outcome"] = outcome
        self.files.drop_bundle()
        self._save()

    def _carry(self) -> None:
        job = self.job
        if job.get("phase") not in ("carrying", "installing") or not self._identified or not self.link.up():
            return
        if not self._offered:
            if self.link.pending() == 0:
                self.link.send(FwOffer(int(job["transfer"]), str(job["sha256"]), int(job["size"]),
                                       str(job["to"])).message())
                self._offered = True
            return
        size = int(job["size"])
        if job["phase"] != "carrying" or not self._accepted or self._offset >= size or self.link.pending():
            return
        now = self.mono.mono()
        if now < self._next_block_mono:
            return
        data = self.files.read_block(self._offset, FW_BLOCK_BYTES)
        self.link.send(fw_block(int(job["transfer"]), self._offset, data))
        self.blocks_sent += 1
        self._offset += len(data)
        frame_s = (len(data) + FRAME_OVERHEAD) * 10.0 / self.policy.baud
        self._next_block_mono = now + frame_s / self.policy.line_share

    # -- views -------------------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        """The CIU's firmware and the running or last job (``GET /ciu/firmware``)."""
        return {"ciu": asdict(self.ciu) if self.ciu else None, "supported": self._identified,
                "job": dict(self.job), "offset": self._offset, "blocks_sent": self.blocks_sent}


class CiuImageTarget:
    """The CIU as a target of the meter's DLMS image transfer
    (:class:`~meterd.services.image_target.ImageTarget`): a bundle whose compatible string is the
    CIU's is verified by :meth:`CiuUpdateService.check` (the same checks as ``meterctl firmware
    install --ciu``), and its activation is :meth:`CiuUpdateService.stage`: carried over the link,
    installed and tried by the CIU. Its delivery is done when the CIU confirmed the version, failed
    when the CIU refused it, its install failed or it rolled back."""

    name = "ciu"

    def __init__(self, service: CiuUpdateService, manifest: ManifestReader) -> None:
        self.service = service
        self.manifest = manifest

    async def claims(self, bundle: Path) -> bool:
        try:
            info = await self.manifest.manifest(Path(bundle))
        except HwError:  # not a bundle, or RAUC cannot be run: the meter's engine says why
            return False
        return info.compatible == self.service.policy.compatible

    async def verify(self, bundle: Path) -> BundleVerdict:
        verdict = await self.service.check(bundle)
        if verdict.reason == "engine":
            raise EngineFailure(f"the CIU's bundle could not be read: {verdict.detail}")
        return _bundle_verdict(verdict, self.service.policy.compatible)

    async def activate(self, bundle: Path, utc: _dt.datetime) -> BundleVerdict:
        verdict = await self.service.stage(bundle)
        if not verdict.ok:  # stage() recorded the refusal (164), except while another job runs
            raise EngineFailure(f"CIU update refused ({verdict.reason}): {verdict.detail}",
                                recorded=verdict.reason != "busy")
        return _bundle_verdict(verdict, self.service.policy.compatible)

    def delivery(self, version: str) -> Delivery:
        job = self.service.job
        if job.get("to") != version:
            return Delivery.FAILED  # the job was replaced (not possible while it runs)
        if self.service.running_job():
            return Delivery.RUNNING
        return Delivery.DONE if job.get("outcome") == "activated" else Delivery.FAILED


class ManifestReader(Protocol):
    """A bundle's manifest read without its signature (:meth:`hw.rauc.RaucClient.manifest`)."""

    async def manifest(self, bundle: Path) -> BundleInfo: ...


def _bundle_verdict(verdict: Verdict, compatible: str) -> BundleVerdict:
    """The CIU's verdict as the image transfer's: identity ``PMM-CIU <version>`` (the CIU's own
    SHA-256 is known once it runs and identifies itself, so the checksum is empty)."""
    identity = FirmwareIdentity(verdict.version, compatible, f"PMM-CIU {verdict.version}", "") if verdict.version \
        else None
    if verdict.ok:
        return BundleVerdict(identity, None, verdict.detail)
    try:
        reason = RejectReason(verdict.reason)
    except ValueError:
        reason = RejectReason.MALFORMED
    return BundleVerdict(identity, reason, verdict.detail)


def _digest(path: Path) -> tuple[str, int]:
    """Hex SHA-256 and size (B) of ``path``."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
