"""The RAUC update engine as the meter uses it: its command line, run asynchronously.

``rauc info`` reads and verifies a bundle against the keyring (no service needed);
``rauc install``, ``rauc status`` and ``rauc status mark-*`` talk to the RAUC service over the
system D-Bus (``de.pengutronix.rauc.Installer``). On the Pi that is the system bus and
``/etc/rauc/system.conf``; on the simulated board a private bus (``bus_address``) and the
simulated board's configuration (:mod:`hw.boot_sim`). The command line is used rather than the
D-Bus API because it is what an operator runs by hand, and ``rauc info`` needs no service.

Every failure is a :class:`RaucError` with one line of explanation (RAUC's own last message,
never a traceback); :class:`BundleUnreadable` says whether the signature failed or the file is
not a complete bundle. Nothing here knows the meter.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hw.errors import HwError

INFO_TIMEOUT_S = 120.0     # rauc info of a large bundle (signature over the whole file)
INSTALL_TIMEOUT_S = 1800.0  # rauc install: copying a root filesystem to an SD card (s)
STATUS_TIMEOUT_S = 30.0
#: RAUC's words for a file that is not a whole bundle (checked before the signature's)
_FORMAT_ERRORS = ("invalid bundle format", "exceeds bundle size", "too small", "squashfs", "failed to mount",
                  "unexpected end", "premature end")


class RaucError(HwError):
    """RAUC could not do what was asked; the message is one line."""


class RaucUnavailable(RaucError):
    """The rauc program or its service cannot be reached."""


class BundleUnreadable(RaucError):
    """A bundle RAUC refuses to read: ``kind`` is ``signature`` (not signed by a key of the
    keyring, or its content changed after signing) or ``format`` (not a complete bundle:
    truncated, damaged or not a bundle at all)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class BundleInfo:
    """What a verified bundle's manifest says: ``compatible`` (hardware string), ``version``,
    ``description`` (free text; the meter keeps its metrology identification there),
    ``build``, and the image file names and sizes (bytes) by slot class."""

    compatible: str
    version: str
    description: str
    build: str
    images: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SlotStatus:
    """One slot as ``rauc status --detailed`` shows it: ``name`` (``rootfs.0``), ``bootname``
    (``A``), ``state`` (booted/active/inactive), ``boot_status`` (good/bad), and the bundle last
    installed into it (version and compatible, empty when none)."""

    name: str
    bootname: str
    state: str
    boot_status: str
    bundle_version: str = ""
    bundle_compatible: str = ""
    installed_utc: str = ""


@dataclass(frozen=True)
class RaucStatus:
    """The system as RAUC sees it: the booted slot's bootname, the primary slot (what boots
    next) by bootname, and every slot."""

    compatible: str
    booted: str
    primary: str
    slots: tuple[SlotStatus, ...]

    def slot(self, bootname: str) -> SlotStatus | None:
        """The slot with this bootname, or None."""
        return next((s for s in self.slots if s.bootname == bootname), None)


def _last_line(text: str) -> str:
    """The last meaningful line of RAUC's stderr (its informational lines dropped)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "rauc-Message" not in ln]
    return lines[-1] if lines else "no message"


def parse_status(text: str) -> RaucStatus:
    """``rauc status --detailed --output-format=json`` as a :class:`RaucStatus`; RaucError when
    it is not that document."""
    try:
        doc = json.loads(text)
        slots: list[SlotStatus] = []
        by_name: dict[str, str] = {}
        for entry in doc["slots"]:
            for name, s in entry.items():
                bundle = (s.get("slot_status") or {}).get("bundle") or {}
                installed = (s.get("slot_status") or {}).get("installed") or {}
                slots.append(SlotStatus(name=name, bootname=str(s.get("bootname") or ""), state=str(s.get("state")),
                                        boot_status=str(s.get("boot_status") or ""),
                                        bundle_version=str(bundle.get("version") or ""),
                                        bundle_compatible=str(bundle.get("compatible") or ""),
                                        installed_utc=str(installed.get("timestamp") or "")))
                by_name[name] = str(s.get("bootname") or "")
        return RaucStatus(compatible=str(doc.get("compatible") or ""), booted=str(doc.get("booted") or ""),
                          primary=by_name.get(str(doc.get("boot_primary") or ""), ""),
                          slots=tuple(sorted(slots, key=lambda s: s.name)))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RaucError(f"rauc status: unexpected output ({exc})") from None


def parse_info(text: str) -> BundleInfo:
    """``rauc info --output-format=json`` as a :class:`BundleInfo`."""
    try:
        doc = json.loads(text)
        images: dict[str, int] = {}
        for entry in doc.get("images") or []:
            for slot_class, image in entry.items():
                images[str(slot_class)] = int(image.get("size") or 0)
        return BundleInfo(compatible=str(doc.get("compatible") or ""), version=str(doc.get("version") or ""),
                          description=str(doc.get("description") or ""), build=str(doc.get("build") or ""),
                          images=images)
    except (ValueError, TypeError, AttributeError) as exc:
        raise RaucError(f"rauc info: unexpected output ({exc})") from None


class RaucClient:
    """The ``rauc`` program with the meter's configuration.

    ``conf``: RAUC's system.conf (None: RAUC's default ``/etc/rauc/system.conf``); ``keyring``:
    a PEM keyring overriding the configuration's; ``bus_address``: the D-Bus the RAUC service is
    on (None: the system bus); ``program``: the rauc binary.
    """

    def __init__(self, conf: Path | None = None, *, keyring: Path | None = None, bus_address: str | None = None,
                 program: str = "rauc") -> None:
        self.conf = conf
        self.keyring = keyring
        self.bus_address = bus_address
        self.program = program

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.bus_address:
            env["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus_address
        return env

    def _common(self) -> list[str]:
        args: list[str] = []
        if self.conf is not None:
            args.append(f"--conf={self.conf}")
        return args

    async def _run(self, args: Sequence[str], timeout_s: float) -> tuple[int, str, str]:
        try:
            proc = await asyncio.create_subprocess_exec(self.program, *args, stdin=asyncio.subprocess.DEVNULL,
                                                        stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.PIPE, env=self._env())
        except OSError as exc:
            raise RaucUnavailable(f"cannot run {self.program}: {exc.strerror or exc}") from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise RaucError(f"{self.program} {args[0]} did not finish within {timeout_s:g} s") from None
        assert proc.returncode is not None
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    async def info(self, bundle: Path) -> BundleInfo:
        """Read and verify ``bundle`` (signature against the keyring); :class:`BundleUnreadable`
        when RAUC refuses it."""
        args = ["info", *self._common(), "--output-format=json"]
        if self.keyring is not None:
            args.append(f"--keyring={self.keyring}")
        code, out, err = await self._run([*args, str(bundle)], INFO_TIMEOUT_S)
        if code != 0:
            line = _last_line(err)
            if not Path(bundle).is_file():
                raise RaucError(f"no bundle at {bundle}")
            lower = line.lower()
            if "exclusive bundle access" in lower:  # F_SETLEASE: another process has it open for writing
                raise RaucError(f"the bundle is open for writing elsewhere: {line}")
            if any(word in lower for word in _FORMAT_ERRORS):
                raise BundleUnreadable("format", f"not a complete bundle: {line}")
            if "signature" in lower or "verif" in lower:
                raise BundleUnreadable("signature", f"signature: {line}")
            raise BundleUnreadable("format", f"not a complete bundle: {line}")
        return parse_info(out)

    async def manifest(self, bundle: Path) -> BundleInfo:
        """Read ``bundle``'s manifest without verifying its signature (``rauc info --no-verify``):
        only to see whom a bundle is for; :meth:`info` is the check. :class:`BundleUnreadable`
        (``format``) when it is not a bundle."""
        code, out, err = await self._run(["info", *self._common(), "--no-verify", "--output-format=json",
                                          str(bundle)], INFO_TIMEOUT_S)
        if code != 0:
            raise BundleUnreadable("format", f"not a complete bundle: {_last_line(err)}")
        return parse_info(out)

    async def status(self) -> RaucStatus:
        """The slots, the booted and the primary one (from the service)."""
        code, out, err = await self._run(["status", *self._common(), "--detailed", "--output-format=json"],
                                         STATUS_TIMEOUT_S)
        if code != 0:
            raise RaucUnavailable(f"rauc status: {_last_line(err)}")
        return parse_status(out)

    async def install(self, bundle: Path) -> None:
        """Install ``bundle`` into the inactive slot (the service verifies it again) and make that
        slot the primary one; RaucError with RAUC's reason when it fails."""
        code, _out, err = await self._run(["install", *self._common(), str(bundle)], INSTALL_TIMEOUT_S)
        if code != 0:
            raise RaucError(f"rauc install: {_last_line(err)}")

    async def mark(self, action: str, slot: str = "booted") -> None:
        """``rauc status mark-good|mark-bad|mark-active SLOT`` (``booted``, ``other`` or a name)."""
        if action not in ("mark-good", "mark-bad", "mark-active"):
            raise ValueError(f"unknown rauc status action {action!r}")
        code, _out, err = await self._run(["status", *self._common(), action, slot], STATUS_TIMEOUT_S)
        if code != 0:
            raise RaucError(f"rauc status {action} {slot}: {_last_line(err)}")

