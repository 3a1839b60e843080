"""The simulated board's boot: file-backed slots, a directory standing in for the autoboot
partition, the Pi firmware's tryboot rule, and the RAUC service of one boot.

Layout under ``root`` (on the simulated meter ``<state_dir>/firmware-sim``; the state directory
itself is the data partition both slots share)::

    autoboot/autoboot.txt   [all] / [tryboot] boot_partition, as on the Pi (p2 = A, p3 = B)
    autoboot/slot-state     the handler's good/bad per slot; autoboot/tryboot-pending
    reboot-tryboot          the one-shot reboot argument ("0 tryboot") the firmware consumes
    chosen/tryboot          what the firmware tells the booted system (4 bytes, 1 = trial)
    cmdline                 the booted slot's kernel command line (rauc.slot=A)
    slotA.img, slotB.img    the root filesystem slots (plain files: RAUC raw slots)
    system.conf, keyring.pem, rauc/ (RAUC's status), bus.conf, bus.sock (a private system bus;
    in the system's temporary directory when the board's path is too long for a socket)

:meth:`SimBoard.boot` is the firmware: it boots ``[tryboot]`` once when the reboot asked for
it and ``[all]`` otherwise, so a trial that did not confirm is gone at the next reboot.
:meth:`SimBoard.reboot` is the running system's reboot: it leaves the reboot argument and stops
meterd (SIGTERM, a clean stop); the launcher (``meterd.app.simrun``) then boots the board
again and starts meterd in the slot the firmware chose. The same handler script
(``image/rauc/tryboot-handler``) switches the slots here and on the Pi.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hw.boot import PARTITIONS, Autoboot, BootError, BootInfo, read_autoboot, read_boot, slot_of
from hw.dbus_daemon import stop_process

HANDLER = Path(__file__).resolve().parents[1] / "image" / "rauc" / "tryboot-handler"
SLOT_BYTES = 1 << 20          # size of a fresh slot file (B); an install replaces it
SERVICE_START_S = 20.0        # how long the RAUC service may take to answer (s)
MAX_SOCKET_PATH = 99          # dbus-daemon's limit for a unix:path= socket (octets)


@dataclass
class SimServices:
    """The private D-Bus daemon and RAUC service of one simulated boot."""

    bus: subprocess.Popen[bytes]
    rauc: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Stop both (the board goes down)."""
        for proc in (self.rauc, self.bus):
            stop_process(proc, wait_s=10.0)


class SimBoard:
    """The simulated board under ``root`` (module docstring)."""

    def __init__(self, root: Path, handler: Path = HANDLER) -> None:
        self.root = Path(root)
        self.handler = handler

    @property
    def autoboot_dir(self) -> Path:
        return self.root / "autoboot"

    @property
    def conf(self) -> Path:
        return self.root / "system.conf"

    @property
    def bus_address(self) -> str:
        return f"unix:path={self.bus_socket}"

    @property
    def bus_socket(self) -> Path:
        """The private system bus's socket: ``bus.sock`` on the board, or, when that path is
        longer than a socket's may be, a name in the temporary directory derived from it."""
        sock = self.root.absolute() / "bus.sock"
        if len(os.fsencode(sock)) <= MAX_SOCKET_PATH:
            return sock
        digest = hashlib.sha256(os.fsencode(self.root.absolute())).hexdigest()[:20]
        return Path(tempfile.gettempdir()) / f"pmm-board-{digest}.sock"

    @property
    def cmdline(self) -> Path:
        return self.root / "cmdline"

    @property
    def tryboot_file(self) -> Path:
        return self.root / "chosen" / "tryboot"

    def exists(self) -> bool:
        """True when the board was prepared (its configuration is there)."""
        return self.conf.is_file() and (self.autoboot_dir / "autoboot.txt").is_file()

    def prepare(self, keyring: Path, compatible: str) -> None:
        """Make the board if it is new (slot A permanent, both slots empty files), and write
        RAUC's configuration for it with ``keyring`` (PEM) and ``compatible`` (every time)."""
        (self.root / "chosen").mkdir(parents=True, exist_ok=True)
        self.autoboot_dir.mkdir(parents=True, exist_ok=True)
        (self.root / "rauc").mkdir(exist_ok=True)
        autoboot = self.autoboot_dir / "autoboot.txt"
        if not autoboot.exists():
            autoboot.write_text(Autoboot(PARTITIONS["A"], PARTITIONS["A"]).render(), encoding="ascii")
        for slot in PARTITIONS:
            image = self.root / f"slot{slot}.img"
            if not image.exists():
                with open(image, "wb") as fh:
                    fh.truncate(SLOT_BYTES)
        try:
            shutil.copyfile(keyring, self.root / "keyring.pem")
        except OSError as exc:
            raise BootError(f"cannot read the keyring {keyring}: {exc.strerror or exc}") from None
        slots = "".join(f"\n[slot.rootfs.{i}]\ndevice={self.root / f'slot{slot}.img'}\ntype=raw\nbootname={slot}\n"
                        for i, slot in enumerate(PARTITIONS))
        self.conf.write_text(
            f"[system]\ncompatible={compatible}\nbootloader=custom\nbundle-formats=plain\n"
            f"data-directory={self.root / 'rauc'}\n\n[handlers]\nbootloader-custom-backend={self.handler}\n\n"
            f"[keyring]\npath={self.root / 'keyring.pem'}\n{slots}", encoding="ascii")
        (self.root / "bus.conf").write_text(
            '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"\n'
            ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
            f"<busconfig><type>system</type><listen>unix:path={self.bus_socket}</listen>"
            "<auth>EXTERNAL</auth><policy context=\"default\"><allow user=\"*\"/><allow own=\"*\"/>"
            "<allow send_type=\"method_call\"/><allow send_destination=\"*\"/><allow receive_sender=\"*\"/>"
            "</policy></busconfig>\n",
            encoding="ascii")

    def boot(self) -> BootInfo:
        """Power on: the firmware's choice. The reboot argument ``tryboot`` is consumed (one
        boot only) and selects ``[tryboot]``; otherwise ``[all]``. Writes what the firmware
        tells the system (the tryboot flag, the slot's command line) and returns it."""
        autoboot = read_autoboot(self.autoboot_dir)
        flag = self.root / "reboot-tryboot"
        trial = flag.exists()
        if trial:
            flag.unlink()
        slot = slot_of(autoboot.tryboot_partition if trial else autoboot.boot_partition)
        self.tryboot_file.write_bytes((1 if trial else 0).to_bytes(4, "big"))
        self.cmdline.write_text(f"console=tty1 rauc.slot={slot} rootwait\n", encoding="ascii")
        return BootInfo(slot, trial)

    def booted(self) -> BootInfo:
        """What the firmware reported at the last :meth:`boot`."""
        return read_boot(self.cmdline, self.tryboot_file)

    def handler_env(self) -> dict[str, str]:
        """The environment that points the handler script at this board."""
        return {"PMM_AUTOBOOT_DIR": str(self.autoboot_dir), "PMM_TRYBOOT_FILE": str(self.tryboot_file),
                "PMM_CMDLINE": str(self.cmdline)}

    def start_services(self, program: str = "rauc", preexec: Callable[[], None] | None = None) -> SimServices:
        """Start the board's system bus and the RAUC service for the slot booted last (as
        systemd would); ``preexec`` runs in each child before it starts (the launcher makes
        them die with it). Raises BootError when they do not come up."""
        self.bus_socket.unlink(missing_ok=True)
        env = {**os.environ, **self.handler_env(), "DBUS_SYSTEM_BUS_ADDRESS": self.bus_address}
        log = open(self.root / "services.log", "ab")  # noqa: SIM115  the processes keep it
        bus = subprocess.Popen(["dbus-daemon", f"--config-file={self.root / 'bus.conf'}", "--nofork"],
                               stdout=log, stderr=log, env=env, preexec_fn=preexec)  # noqa: PLW1509
        rauc = subprocess.Popen([program, "service", f"--conf={self.conf}",
                                 f"--override-boot-slot={self.booted().slot}"], stdout=log, stderr=log, env=env,
                                preexec_fn=preexec)  # noqa: PLW1509
        log.close()
        services = SimServices(bus, rauc)
        deadline = time.monotonic() + SERVICE_START_S
        while time.monotonic() < deadline:
            if bus.poll() is not None or rauc.poll() is not None:
                break
            probe = subprocess.run([program, "status", f"--conf={self.conf}"], env=env, capture_output=True,
                                   check=False)
            if probe.returncode == 0:
                return services
            time.sleep(0.05)
        services.stop()
        raise BootError(f"the simulated board's RAUC service did not start (see {self.root / 'services.log'})")

    def reboot_requested(self) -> bool:
        """True when the running system asked for a reboot (consumed by :meth:`take_reboot`)."""
        return (self.root / "reboot").exists()

    def take_reboot(self) -> bool:
        """Consume a reboot request; True when there was one."""
        marker = self.root / "reboot"
        if marker.exists():
            marker.unlink()
            return True
        return False

    async def reboot(self, trial: bool) -> None:
        """The running system reboots: the reboot argument (``0 tryboot`` with ``trial``) is
        left for the firmware, and this process (meterd) is stopped cleanly by SIGTERM; the
        launcher that sees the request boots the board again."""
        flag = self.root / "reboot-tryboot"
        if trial:
            flag.write_bytes(b"0 tryboot\n")
        else:
            flag.unlink(missing_ok=True)
        (self.root / "reboot").write_bytes(b"")
        os.kill(os.getpid(), signal.SIGTERM)
