"""The Raspberry Pi image recipe under image/: what can be checked without a Pi or pi-gen.

Scripts pass shellcheck; the RS-485 overlay compiles with ``dtc -@`` and applies to a base tree;
the meterd-system .deb builds and lintian reports no error or warning; config/pi.toml and the
CIU config are accepted; the config.txt fragment, the pin plan and the units the stage enables
agree with each other; the stage's host step produces the expected root tree; and the first-boot
/data partition is created by systemd-repart on a GPT-converted image (as root, with loop devices).
Tools that are absent make their tests skip (the Makefile installs them).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tomllib
from pathlib import Path

import pytest

from tests.image_tools import MIB, fake_wheel, make_pi_gen_image, need, run
from tests.paths import REPO

ROOT = REPO
IMAGE = ROOT / "image"
STAGE = IMAGE / "stage-meter"
CHROOT_STEP = STAGE / "00-meter" / "02-run-chroot.sh"

#: lintian tags accepted on the hand-built package, each with the reason.
LINTIAN_ACCEPTED = {
    # The meter runs systemd only (Type=notify, watchdog, sandboxing); no sysvinit scripts.
    "package-supports-alternative-init-but-no-init.d-script",
}


def shell_scripts() -> list[Path]:
    """Every shell script of the recipe: by extension, by shebang, and the sourced EXPORT_IMAGE."""
    found = []
    for path in sorted(IMAGE.rglob("*")):
        if not path.is_file() or "files" in path.relative_to(IMAGE).parts:
            continue
        head = path.read_bytes()[:40]
        if path.suffix == ".sh" or head.startswith(b"#!/bin/sh") or head.startswith(b"#!/bin/bash"):
            found.append(path)
    return found


def pi_config() -> dict:
    return tomllib.loads((ROOT / "config" / "pi.toml").read_text())


def fragment_lines(name: str = "config.txt") -> list[str]:
    return [line.strip() for line in (IMAGE / "boot" / name).read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


# ---------------------------------------------------------------- scripts


def test_the_recipe_has_its_scripts():
    names = {p.relative_to(IMAGE).as_posix() for p in shell_scripts()}
    for expected in ("build-deb.sh", "prepare-stage.sh", "convert-gpt.sh", "stage-meter/prerun.sh",
                     "stage-meter/00-meter/01-run.sh", "stage-meter/00-meter/02-run-chroot.sh",
                     "rootfs/usr/lib/meterd/data-partition", "rootfs/usr/lib/meterd/create-users"):
        assert expected in names


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: p.relative_to(IMAGE).as_posix())
def test_shellcheck_clean(script):
    need("shellcheck")
    proc = run(["shellcheck", "-x", str(script)], cwd=script.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shellcheck_export_image_as_bash():
    need("shellcheck")
    proc = run(["shellcheck", "-s", "bash", str(STAGE / "EXPORT_IMAGE")])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_host_steps_are_executable():
    """pi-gen skips a non-executable NN-run.sh with only a log line."""
    for path in (STAGE / "prerun.sh", STAGE / "00-meter" / "01-run.sh", IMAGE / "build-deb.sh",
                 IMAGE / "prepare-stage.sh", IMAGE / "convert-gpt.sh",
                 IMAGE / "rootfs/usr/lib/meterd/data-partition", IMAGE / "rootfs/usr/lib/meterd/create-users"):
        assert os.access(path, os.X_OK), path


# ---------------------------------------------------------------- device tree

BASE_DTS = """/dts-v1/;
/ {
    compatible = "brcm,bcm2711";
    #address-cells = <1>;
    #size-cells = <1>;
    gpio: gpio@7e200000 { reg = <0x7e200000 0xb4>; };
    uart3: serial@7e201600 { reg = <0x7e201600 0x200>; status = "disabled"; };
};
"""


def test_overlay_compiles_and_applies(tmp_path):
    """dtc -@ compiles the overlay; fdtoverlay applies it to a tree with the labels it targets."""
    need("dtc", "fdtoverlay", "fdtget")
    dtbo = tmp_path / "meter-rs485-uart3.dtbo"
    proc = run(["dtc", "-@", "-I", "dts", "-O", "dtb", "-o", str(dtbo),
                str(IMAGE / "overlays" / "meter-rs485-uart3-overlay.dts")])
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    (tmp_path / "base.dts").write_text(BASE_DTS)
    assert run(["dtc", "-@", "-I", "dts", "-O", "dtb", "-o", str(tmp_path / "base.dtb"),
                str(tmp_path / "base.dts")]).returncode == 0
    merged = tmp_path / "merged.dtb"
    proc = run(["fdtoverlay", "-i", str(tmp_path / "base.dtb"), "-o", str(merged), str(dtbo)])
    assert proc.returncode == 0, proc.stderr

    def get(node: str, prop: str, *fmt: str) -> str:
        out = run(["fdtget", *fmt, str(merged), node, prop])
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    uart = "/serial@7e201600"
    assert get(uart, "status") == "okay"
    assert get(uart, "linux,rs485-enabled-at-boot-time", "-t", "bx") == ""  # present, empty
    assert get(uart, "rs485-rts-delay") == "0 0"
    pins = "/gpio@7e200000/meter_uart3_pins"
    assert get(pins, "brcm,pins") == "4 5 7"  # TXD3, RXD3, RTS3 (DE)
    assert get(pins, "brcm,function") == "3 3 3"  # ALT4
    assert get(pins, "brcm,pull") == "0 2 1"
    assert get(uart, "pinctrl-0") == get(pins, "phandle")


# ---------------------------------------------------------------- configs


def test_pi_config_passes_check_config():
    proc = run([sys.executable, "-m", "meterd", "check-config", "--config", "config/pi.toml", "--file-only"],
               cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "config/pi.toml: ok"


def test_pi_config_is_a_real_meter():
    from meterd.app.features import load_config

    cfg = load_config(ROOT / "config" / "pi.toml")
    assert cfg.hardware.backend == "pi" and cfg.hardware.pin_factory == "lgpio"
    assert cfg.dlms.hdlc_port == "/dev/ttyAMA3" and cfg.dlms.optical_port == "/dev/ttyAMA0"
    assert cfg.storage.state_dir == "/data/meterd"
    assert "sim" not in pi_config()


def test_every_meterd_config_key_is_set_explicitly():
    """A real meter's file names every core key, so defaults changing cannot move a meter silently."""
    import dataclasses

    from meterd.app.config import SECTIONS

    raw = pi_config()
    for name in ("meter", "hardware", "frontend", "storage", "api", "dlms"):
        keys = {f.name for f in dataclasses.fields(SECTIONS[name])}
        assert keys == set(raw[name]), (name, keys ^ set(raw[name]))


def test_ciu_variant_config_loads():
    from ciu.app import load_config

    cfg = load_config(str(IMAGE / "variants/ciu/etc/ciu/ciu.toml"), {})
    assert cfg["link"]["port"] == "/dev/ttyAMA5"
    assert cfg["link"]["key_file"].startswith("/data/ciu/")


# ---------------------------------------------------------------- config.txt and the pin plan

REQUIRED_LINES = ("dtparam=spi=on", "dtoverlay=spi0-1cs", "dtoverlay=spi1-1cs", "dtparam=i2c_arm=on",
                  "dtoverlay=i2c-rtc,pcf2129", "enable_uart=1", "dtoverlay=disable-bt",
                  "dtoverlay=meter-rs485-uart3", "dtoverlay=uart5")


def test_config_txt_has_the_required_lines():
    lines = fragment_lines()
    for line in REQUIRED_LINES:
        assert line in lines, line
    assert lines[0] == "[all]"
    assert not any(line.startswith("dtoverlay=uart3") for line in lines)  # our overlay instead


def test_relay_coils_are_held_low_from_firmware():
    section = pi_config()["load_control"]
    gpio = [line for line in fragment_lines() if line.startswith("gpio=")]
    assert len(gpio) == 2
    pins, _, mode = gpio[0].removeprefix("gpio=").partition("=")
    assert mode == "op,dl"
    assert sorted(int(p) for p in pins.split(",")) == sorted([section["set_pin"], section["reset_pin"]])


def test_the_rs485_de_pin_is_named_in_the_config_and_held_low_from_firmware():
    dlms = pi_config()["dlms"]
    assert dlms["hdlc_direction"] == "kernel" and dlms["hdlc_de_pin"] == 7  # uart3's RTS in the overlay
    assert f"gpio={dlms['hdlc_de_pin']}=op,dl" in fragment_lines()
    assert pi_config()["ciu"]["direction"] == "auto"  # no DE pin: nothing to hold low on the CIU side
    assert not any(line.startswith("gpio=") for line in fragment_lines("config-ciu.txt"))


#: BCM2711 pins each enabled peripheral claims.
PERIPHERAL_PINS = {
    "dtoverlay=spi0-1cs": {8, 9, 10, 11},
    "dtoverlay=spi1-1cs": {18, 19, 20, 21},
    "dtparam=i2c_arm=on": {2, 3},
    "dtoverlay=disable-bt": {14, 15},
    "dtoverlay=meter-rs485-uart3": {4, 5, 7},
    "dtoverlay=uart5": {12, 13},
}


def test_pin_plan_has_no_conflicts():
    cfg = pi_config()
    claims: dict[int, str] = {}

    def claim(pin: int, who: str) -> None:
        if pin < 0:
            return
        assert pin not in claims, f"GPIO{pin}: {claims[pin]} and {who}"
        claims[pin] = who

    lines = fragment_lines()
    for line, pins in PERIPHERAL_PINS.items():
        assert line in lines
        for pin in pins:
            claim(pin, line)
    # every line the meter wires, feature defaults included (a section the file leaves out still
    # attaches with its default pins, which must fit the board too)
    from meterd.app.config import pin_keys
    from meterd.app.features import load_config

    wired = pin_keys(load_config(ROOT / "config" / "pi.toml"))
    assert {"hardware.led_pin", "load_control.set_pin", "supervision.cover_pin", "display.gpio_dc"} <= set(wired)
    assert wired.pop("dlms.hdlc_de_pin") == 7 and claims[7] == "dtoverlay=meter-rs485-uart3"  # DE is uart3's RTS
    for key, pin in wired.items():
        claim(pin, key)
    assert cfg["display"]["spi_port"] == 1 and cfg["hardware"]["spi_bus"] == 0


def test_ciu_pin_plan_has_no_conflicts():
    cfg = tomllib.loads((IMAGE / "variants/ciu/etc/ciu/ciu.toml").read_text())
    lines = fragment_lines("config-ciu.txt")
    used = [*PERIPHERAL_PINS["dtoverlay=spi0-1cs"], *PERIPHERAL_PINS["dtoverlay=uart5"],
            *PERIPHERAL_PINS["dtoverlay=disable-bt"], cfg["display"]["gpio_dc"], cfg["display"]["gpio_rst"],
            cfg["display"]["gpio_light"], *cfg["keypad"]["rows"], *cfg["keypad"]["cols"]]
    assert len(used) == len(set(used))
    assert {"dtoverlay=spi0-1cs", "dtoverlay=uart5", "dtoverlay=disable-bt"} <= set(lines)


# ---------------------------------------------------------------- udev

UDEV_KEY = re.compile(r'^\s*([A-Za-z_]+(?:\{[^}]+\})?)\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*$')


def udev_rules() -> list[dict[str, tuple[str, str]]]:
    rules = []
    for line in (IMAGE / "udev" / "99-meter.rules").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        rule = {}
        for part in line.split(", "):
            m = UDEV_KEY.match(part)
            assert m, f"not a udev key: {part!r} in {line!r}"
            rule[m.group(1)] = (m.group(2), m.group(3))
        rules.append(rule)
    return rules


def test_udev_rules_give_stable_names_and_groups():
    rules = udev_rules()
    links = {r["SYMLINK"][1]: r for r in rules if "SYMLINK" in r}
    assert set(links) == {"meter-rs485", "meter-optical", "meter-ciu", "pmm-waveform-bridge"}
    bridge = links["pmm-waveform-bridge"]
    assert bridge["ATTRS{product}"] == ("==", "PMM waveform bridge")  # the string the bridge's firmware reports
    assert bridge["ENV{ID_MM_DEVICE_IGNORE}"] == ("=", "1")
    assert links["meter-optical"]["KERNELS"] == ("==", "fe201000.serial")  # uart0
    assert links["meter-rs485"]["KERNELS"] == ("==", "fe201600.serial")  # uart3
    assert links["meter-ciu"]["KERNELS"] == ("==", "fe201a00.serial")  # uart5
    for rule in links.values():
        assert rule["SYMLINK"][0] == "+=" and rule["GROUP"] == ("=", "dialout")
        assert rule["ENV{ID_MM_DEVICE_IGNORE}"] == ("=", "1")
    rtc = [r for r in rules if r.get("SUBSYSTEM") == ("==", "rtc")]
    assert rtc and rtc[0]["KERNEL"] == ("==", "rtc0") and rtc[0]["GROUP"] == ("=", "rtc")


def test_udev_groups_are_created_by_the_users_script():
    script = (IMAGE / "rootfs/usr/lib/meterd/create-users").read_text()
    for rule in udev_rules():
        if "GROUP" in rule and rule["GROUP"][1] != "dialout":
            assert re.search(rf"ensure_user \S+( \S+)* {rule['GROUP'][1]}\b", script), rule


# ---------------------------------------------------------------- units


def enabled_units() -> set[str]:
    units = set()
    for line in CHROOT_STEP.read_text().splitlines():
        m = re.match(r"\s*systemctl enable (.+)$", line)
        if m:
            units.update(m.group(1).split())
    return units


def test_every_enabled_unit_is_shipped():
    units = enabled_units()
    assert {"meterd.service", "meter-clock.service", "ciu.service", "meter-data-partition.service"} <= units
    shipped = {p.name for p in (ROOT / "systemd").glob("*.service")}
    shipped |= {p.name for p in (IMAGE / "rootfs").rglob("*.service")}
    assert units <= shipped, units - shipped


def test_stage_masks_timesyncd_and_purges_fake_hwclock():
    text = CHROOT_STEP.read_text()
    assert "apt-get purge -y fake-hwclock" in text
    assert "systemctl mask systemd-timesyncd.service" in text
    assert "python3 -m venv --system-site-packages /opt/meterd/venv" in text


def test_drop_in_matches_the_state_dir():
    drop_in = (IMAGE / "variants/meter/usr/lib/systemd/system/meterd.service.d/10-data.conf").read_text()
    state = pi_config()["storage"]["state_dir"]
    assert f"ReadWritePaths={state}" in drop_in and f"RequiresMountsFor={state}" in drop_in
    tmpfiles = (IMAGE / "variants/meter/usr/lib/tmpfiles.d/meterd-data.conf").read_text()
    assert f"d {state} 0750 meterd meterd -" in tmpfiles


def test_data_partition_unit_verifies(tmp_path):
    need("systemd-analyze")
    text = (IMAGE / "rootfs/usr/lib/systemd/system/meter-data-partition.service").read_text()
    unit = tmp_path / "meter-data-partition.service"
    unit.write_text(re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", text, flags=re.M))
    proc = run(["systemd-analyze", "verify", "--man=no", str(unit)])
    noise = [line for line in (proc.stdout + proc.stderr).splitlines()
             if line.strip() and "Failed to connect to bus" not in line]
    assert proc.returncode == 0 and noise == [], "\n".join(noise)


# ---------------------------------------------------------------- the .deb


def test_deb_builds_and_lintian_is_clean(tmp_path):
    need("dpkg-deb")
    proc = run(["bash", str(IMAGE / "build-deb.sh"), str(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    deb = Path(proc.stdout.strip())
    assert deb.name == "meterd-system_0.1.0_all.deb" and deb.exists()
    contents = run(["dpkg-deb", "-c", str(deb)]).stdout
    for path in ("./usr/lib/systemd/system/meterd.service", "./usr/lib/systemd/system/meter-clock.service",
                 "./usr/lib/systemd/system/meterd.service.d/10-data.conf",
                 "./usr/lib/systemd/system/meter-data-partition.service",
                 "./usr/lib/udev/rules.d/99-meter.rules", "./usr/lib/meterd/repart.d/50-data.conf",
                 "./etc/meterd/meterd.toml", "./usr/share/doc/meterd-system/copyright"):
        assert f" {path}\n" in contents + "\n", path
    assert all(" root/root " in line for line in contents.splitlines())
    assert run(["dpkg-deb", "-I", str(deb), "conffiles"]).stdout.split() == ["/etc/meterd/meterd.toml"]
    postinst = run(["dpkg-deb", "-I", str(deb), "postinst"]).stdout
    assert "/usr/lib/meterd/create-users meter" in postinst
    need("lintian")
    lint = run(["lintian", "--tag-display-limit", "0", "-I", str(deb)])
    found = [line for line in lint.stdout.splitlines() if re.match(r"^[EWI]: ", line)]
    errors = [line for line in found if line.startswith(("E:", "W:"))]
    assert errors == [], "\n".join(errors)
    tags = {line.split()[2] for line in found}
    assert tags <= LINTIAN_ACCEPTED, tags - LINTIAN_ACCEPTED


# ---------------------------------------------------------------- the stage's host step


PI_GEN_CMDLINE = "console=serial0,115200 console=tty1 root=ROOTDEV rootfstype=ext4 fsck.repair=yes rootwait resize\n"
PI_GEN_FSTAB = ("proc            /proc           proc    defaults          0       0\n"
                "BOOTDEV  /boot/firmware  vfat    defaults          0       2\n"
                "ROOTDEV  /               ext4    defaults,noatime  0       1\n")


def stage_root(tmp_path: Path, variant: str) -> tuple[Path, Path]:
    need("dtc")
    files = tmp_path / "files"
    proc = run(["bash", str(IMAGE / "prepare-stage.sh"), "--variant", variant, "--wheel",
                str(fake_wheel(tmp_path)), "--out", str(files)], env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr
    root = tmp_path / "rootfs"
    (root / "boot/firmware").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "boot/firmware/cmdline.txt").write_text(PI_GEN_CMDLINE)
    (root / "boot/firmware/config.txt").write_text("auto_initramfs=1\narm_64bit=1\n")
    (root / "etc/fstab").write_text(PI_GEN_FSTAB)
    return files, root


def run_host_step(files: Path, root: Path) -> None:
    env = {**os.environ, "ROOTFS_DIR": str(root), "METER_STAGE_FILES": str(files)}
    proc = run(["bash", "./01-run.sh"], cwd=STAGE / "00-meter", env=env)
    assert proc.returncode == 0, proc.stderr


def test_host_step_builds_the_meter_root(tmp_path):
    files, root = stage_root(tmp_path, "meter")
    run_host_step(files, root)
    run_host_step(files, root)  # pi-gen re-runs stay idempotent
    fw = root / "boot/firmware"
    config = fw.joinpath("config.txt").read_text()
    assert config.startswith("auto_initramfs=1\narm_64bit=1\n")
    assert config.count("dtoverlay=meter-rs485-uart3") == 1
    assert config.endswith((IMAGE / "boot/config.txt").read_text())
    assert fw.joinpath("overlays/meter-rs485-uart3.dtbo").read_bytes()[:4] == b"\xd0\x0d\xfe\xed"
    cmdline = fw.joinpath("cmdline.txt").read_text()
    assert cmdline == "overlayroot=tmpfs:recurse=0 console=tty1 root=LABEL=rootfs rootfstype=ext4 fsck.repair=yes rootwait\n"
    fstab = root.joinpath("etc/fstab").read_text().splitlines()
    # the A/B image: the running slot's partitions (udev names them from rauc.slot=)
    assert fstab[1].split() == ["/dev/meter-boot", "/boot/firmware", "vfat", "defaults,ro", "0", "2"]
    assert fstab[2].split() == ["/dev/meter-root", "/", "ext4", "defaults,noatime", "0", "1"]
    data = [line.split() for line in fstab if line.startswith("LABEL=data")]
    assert len(data) == 1 and data[0][1:3] == ["/data", "ext4"] and "nofail" in data[0][3]
    assert (root / "data").is_dir()
    assert root.joinpath("etc/meterd/meterd.toml").read_text() == (ROOT / "config/pi.toml").read_text()
    for unit in ("meterd.service", "meter-clock.service", "meter-data-partition.service"):
        assert (root / "usr/lib/systemd/system" / unit).exists(), unit
    assert not (root / "usr/lib/systemd/system/ciu.service").exists()
    assert (root / "usr/lib/systemd/system/meterd.service.d/10-data.conf").exists()
    assert (root / "usr/lib/udev/rules.d/99-meter.rules").exists()
    assert os.access(root / "usr/lib/meterd/data-partition", os.X_OK)
    assert root.joinpath("usr/lib/meterd/image-variant").read_text() == "meter\n"
    assert [p.name for p in (root / "opt/meterd/wheels").iterdir()] == ["pmm_reference_meter-0.1.0-py3-none-any.whl"]


def test_host_step_builds_the_ciu_root(tmp_path):
    files, root = stage_root(tmp_path, "ciu")
    run_host_step(files, root)
    config = (root / "boot/firmware/config.txt").read_text()
    assert "dtoverlay=uart5" in config and "meter-rs485-uart3" not in config
    assert (root / "usr/lib/systemd/system/ciu.service").exists()
    assert not (root / "usr/lib/systemd/system/meterd.service").exists()
    assert (root / "etc/ciu/ciu.toml").exists() and not (root / "etc/meterd").exists()
    assert root.joinpath("usr/lib/meterd/image-variant").read_text() == "ciu\n"


def test_host_step_refuses_unprepared_files(tmp_path):
    root = tmp_path / "rootfs"
    root.mkdir()
    proc = run(["bash", "./01-run.sh"], cwd=STAGE / "00-meter",
               env={**os.environ, "ROOTFS_DIR": str(root), "METER_STAGE_FILES": str(tmp_path / "none")})
    assert proc.returncode == 1 and "prepare-stage.sh" in proc.stderr


# ---------------------------------------------------------------- GPT and the first-boot /data partition

def digest(path: Path, offset: int, size: int) -> str:
    with path.open("rb") as fh:
        fh.seek(offset)
        return hashlib.sha256(fh.read(size)).hexdigest()


def test_convert_gpt_refuses_a_gpt_image(tmp_path):
    need("sfdisk", "sgdisk")
    img = tmp_path / "gpt.img"
    img.write_bytes(b"")
    os.truncate(img, 16 * MIB)
    assert run(["sgdisk", "-o", str(img)]).returncode == 0
    proc = run(["bash", str(IMAGE / "convert-gpt.sh"), str(img)])
    assert proc.returncode == 1 and "expected dos" in proc.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="systemd-repart formats through a loop device: needs root")
def test_first_boot_creates_the_data_partition(tmp_path):
    need("sfdisk", "sgdisk", "systemd-repart", "mkfs.ext4", "mkfs.vfat", "blkid")
    if not Path("/dev/loop-control").exists():
        pytest.skip("no loop devices")
    img = tmp_path / "meter.img"
    make_pi_gen_image(img, boot_mib=16, root_mib=64)
    boot = digest(img, 8 * MIB, 16 * MIB)
    rootfs = digest(img, 24 * MIB, 64 * MIB)

    # Unconverted, systemd-repart refuses the MBR disk: the reason the image is converted.
    script = str(IMAGE / "rootfs/usr/lib/meterd/data-partition")
    env = {**os.environ, "METER_REPART_DEFINITIONS": str(IMAGE / "rootfs/usr/lib/meterd/repart.d")}
    assert run(["sh", script, str(img)], env=env).returncode == 77

    proc = run(["bash", str(IMAGE / "convert-gpt.sh"), str(img), "arm64"])
    assert proc.returncode == 0, proc.stderr
    table = run(["sfdisk", "--dump", str(img)]).stdout
    assert "label: gpt" in table
    assert "type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE" in table and 'name="rootfs"' in table
    assert "type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" in table and 'name="bootfs"' in table

    os.truncate(img, 400 * MIB)  # the SD card is larger than the image
    proc = run(["sh", script, str(img)], env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    parts = re.findall(r"start=\s*(\d+), size=\s*(\d+), type=([0-9A-F-]+).*name=\"(\w+)\"",
                       run(["sfdisk", "--dump", str(img)]).stdout)
    assert [p[3] for p in parts] == ["bootfs", "rootfs", "data"]
    start, size = int(parts[2][0]) * 512, int(parts[2][1]) * 512
    assert parts[2][2] == "0FC63DAF-8483-4772-8E79-3D69D8477DE4"  # linux-generic
    assert size >= 256 * MIB and start + size > 390 * MIB  # it takes the rest of the card
    probe = run(["blkid", "-p", "-O", str(start), "-o", "export", str(img)]).stdout
    assert "TYPE=ext4" in probe and "LABEL=data" in probe
    assert digest(img, 8 * MIB, 16 * MIB) == boot and digest(img, 24 * MIB, 64 * MIB) == rootfs

    before = run(["sfdisk", "--dump", str(img)]).stdout
    proc = run(["sh", script, str(img)], env=env)  # every later boot: nothing to do
    assert proc.returncode == 0 and run(["sfdisk", "--dump", str(img)]).stdout == before
