"""The A/B image recipe agrees with itself, without pi-gen or a Pi.

RAUC's system.conf names slot devices by GPT partition name; image/make-ab-image.sh makes those
partitions; the tryboot handler's partition numbers, the autoboot.txt it starts from, fstab's
mounts, udev's slot links and the files the stage installs (handler, post-install handler,
keyring, RAUC's data directory) must all agree. The assembly itself runs on a small image laid
out like pi-gen's export (no root, no mounts: mtools); the scripts pass shellcheck.
"""

from __future__ import annotations

import configparser
import json
import os
import re
from pathlib import Path

import pytest

from tests.image_tools import MIB, fake_wheel, make_pi_gen_image, need, run
from tests.paths import REPO

IMAGE = REPO / "image"
RAUC = IMAGE / "rauc"
ASSEMBLY = IMAGE / "make-ab-image.sh"
HANDLER = RAUC / "tryboot-handler"
SCRIPTS = [ASSEMBLY, HANDLER, RAUC / "post-install", RAUC / "slot-cmdline", RAUC / "dev-keys.sh",
           RAUC / "build-bundle.sh", IMAGE / "prepare-stage.sh", IMAGE / "stage-meter/00-meter/01-run.sh"]


def layout() -> dict[str, int]:
    """GPT partition name -> number, from the assembly script's LAYOUT."""
    text = ASSEMBLY.read_text()
    block = re.search(r'LAYOUT="([^"]*)"', text)
    assert block is not None
    return {line.split()[1]: int(line.split()[0]) for line in block.group(1).splitlines()}


def system_conf() -> configparser.ConfigParser:
    conf = configparser.ConfigParser(interpolation=None)
    conf.read_string((RAUC / "system.conf").read_text())
    return conf


def handler_default(var: str, env: str) -> str:
    """The default of ``var=${env:-default}`` in the tryboot handler (the Pi's paths)."""
    found = re.search(rf"^{var}=\$\{{{env}:-([^}}]*)\}}", HANDLER.read_text(), re.M)
    assert found is not None, var
    return found.group(1)


def test_slot_devices_are_the_partitions_the_assembly_makes() -> None:
    parts = layout()
    assert parts == {"autoboot": 1, "boot-a": 2, "boot-b": 3, "rootfs-a": 4, "rootfs-b": 5}
    conf = system_conf()
    slots = {s.removeprefix("slot."): conf[s] for s in conf.sections() if s.startswith("slot.")}
    devices = {name: s["device"].removeprefix("/dev/disk/by-partlabel/") for name, s in slots.items()}
    assert all(s["device"].startswith("/dev/disk/by-partlabel/") for s in slots.values())
    assert sorted(devices.values()) == sorted(n for n in parts if n != "autoboot")
    for index, bootname in (("0", "A"), ("1", "B")):
        root, boot = slots[f"rootfs.{index}"], slots[f"boot.{index}"]
        assert root["bootname"] == bootname and root["type"] == "ext4"
        assert devices[f"rootfs.{index}"] == f"rootfs-{bootname.lower()}"
        assert boot["parent"] == f"rootfs.{index}" and boot["type"] == "vfat"
        assert devices[f"boot.{index}"] == f"boot-{bootname.lower()}"
    # the tryboot handler's boot partition numbers are the layout's, and so is autoboot.txt
    assert handler_default("PART_A", "PMM_PART_A") == str(parts["boot-a"])
    assert handler_default("PART_B", "PMM_PART_B") == str(parts["boot-b"])
    autoboot = re.search(r"printf '(\[all\][^']*)'", ASSEMBLY.read_text())
    assert autoboot is not None
    assert autoboot.group(1).split("\\n")[:5] == [
        "[all]", "tryboot_a_b=1", f"boot_partition={parts['boot-a']}", "[tryboot]",
        f"boot_partition={parts['boot-b']}"]
    # the post-install handler and the udev links know the same names
    post = (RAUC / "post-install").read_text()
    assert '"$PARTLABELS/rootfs-a"' in post and '"$PARTLABELS/rootfs-b"' in post
    rules = (IMAGE / "udev/98-meter-slots.rules").read_text()
    for name in ("boot-a", "boot-b", "rootfs-a", "rootfs-b"):
        slot = name[-1].upper()
        assert re.search(rf'"{name}", PROGRAM=="\S+ -qw rauc.slot={slot} /proc/cmdline", SYMLINK\+="meter-', rules)


def test_system_conf_keeps_its_status_on_the_data_partition_and_takes_plain_bundles() -> None:
    conf = system_conf()
    assert conf["system"]["compatible"] == "pmm1221-rpi4"
    assert conf["system"]["bootloader"] == "custom"
    assert conf["system"]["data-directory"] == "/data/rauc"
    assert "plain" in conf["system"]["bundle-formats"].split()
    tmpfiles = (IMAGE / "variants/meter/usr/lib/tmpfiles.d/meterd-data.conf").read_text()
    assert re.search(r"^d /data/rauc 0700 root root", tmpfiles, re.M)
    packages = (IMAGE / "stage-meter/00-meter/00-packages-nr").read_text().split()
    assert "rauc" in packages


def test_the_stage_installs_what_system_conf_names(tmp_path: Path) -> None:
    need("dtc", "openssl")
    keyring = tmp_path / "ca.pem"
    proc = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-days", "2", "-subj", "/CN=ca", "-keyout", str(tmp_path / "ca.key"), "-out", str(keyring)])
    assert proc.returncode == 0, proc.stderr
    files = tmp_path / "files"
    env = {**os.environ, "PYTHON": "false"}  # no check-config here: tests/unit/repo/test_image.py runs it
    proc = run(["bash", str(IMAGE / "prepare-stage.sh"), "--wheel", str(fake_wheel(tmp_path)), "--out", str(files),
                "--keyring", str(tmp_path / "ca.key")], env=env)
    assert proc.returncode == 2 and "private key" in proc.stderr  # a key is never put in the image
    proc = run(["bash", str(IMAGE / "prepare-stage.sh"), "--wheel", str(fake_wheel(tmp_path)), "--out", str(files),
                "--keyring", str(keyring)], env=env)
    assert proc.returncode == 0, proc.stderr
    root = tmp_path / "rootfs"
    (root / "boot/firmware").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "boot/firmware/cmdline.txt").write_text("console=tty1 root=ROOTDEV rootfstype=ext4 rootwait\n")
    (root / "boot/firmware/config.txt").write_text("arm_64bit=1\n")
    (root / "etc/fstab").write_text("BOOTDEV  /boot/firmware  vfat    defaults          0       2\n"
                                    "ROOTDEV  /               ext4    defaults,noatime  0       1\n")
    proc = run(["bash", "./01-run.sh"], cwd=IMAGE / "stage-meter/00-meter",
               env={**os.environ, "ROOTFS_DIR": str(root), "METER_STAGE_FILES": str(files)})
    assert proc.returncode == 0, proc.stderr
    conf = system_conf()
    assert (root / "etc/rauc/system.conf").read_text() == (RAUC / "system.conf").read_text()
    for path in (conf["handlers"]["bootloader-custom-backend"], conf["handlers"]["post-install"],
                 "/usr/lib/meterd/slot-cmdline"):
        assert os.access(root / path.lstrip("/"), os.X_OK), path
    assert (root / "usr/lib/meterd/tryboot-handler").read_bytes() == HANDLER.read_bytes()
    post = (RAUC / "post-install").read_text()
    assert "SLOT_CMDLINE=${PMM_SLOT_CMDLINE:-/usr/lib/meterd/slot-cmdline}" in post
    installed = root / conf["keyring"]["path"].lstrip("/")
    assert installed.read_bytes() == keyring.read_bytes() and b"PRIVATE KEY" not in installed.read_bytes()
    fstab = [line.split() for line in (root / "etc/fstab").read_text().splitlines()]
    mounts = {fields[1]: fields for fields in fstab}
    assert mounts["/boot/firmware"][0] == "/dev/meter-boot" and mounts["/"][0] == "/dev/meter-root"
    assert mounts[handler_default("DIR", "PMM_AUTOBOOT_DIR")][0] == "PARTLABEL=autoboot"
    # the data partition: no access times, lazy timestamps (a write that keeps a file's size costs
    # no journal commit), ext4's journal every 30 s
    assert mounts["/data"][0] == "LABEL=data" and mounts["/data"][2] == "ext4"
    assert {"noatime", "lazytime", "commit=30"} <= set(mounts["/data"][3].split(","))
    assert (root / "usr/lib/udev/rules.d/98-meter-slots.rules").exists()


def pi_gen_export(path: Path, boot_mib: int, root_mib: int) -> None:
    """An image laid out like pi-gen's export: MBR, FAT bootfs at 8 MiB with cmdline.txt, ext4
    rootfs to the end."""
    make_pi_gen_image(path, boot_mib, root_mib)
    start = 8 * MIB
    cmdline = path.with_name("cmdline.txt")
    cmdline.write_text("overlayroot=tmpfs:recurse=0 console=tty1 root=LABEL=rootfs rootfstype=ext4 rootwait\n")
    proc = run(["mcopy", "-i", f"{path}@@{start}", str(cmdline), "::cmdline.txt"],
               env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    assert proc.returncode == 0, proc.stderr


def fat_file(image: Path, offset: int, name: str) -> str:
    proc = run(["mtype", "-i", f"{image}@@{offset}", f"::{name}"], env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.replace("\r", "")


def test_the_assembly_makes_the_a_b_layout_from_pi_gens_export(tmp_path: Path) -> None:
    need("sfdisk", "sgdisk", "mkfs.vfat", "mkfs.ext4", "mcopy", "mtype", "e2fsck", "resize2fs")
    export = tmp_path / "export.img"
    pi_gen_export(export, boot_mib=16, root_mib=8)
    proc = run(["bash", str(ASSEMBLY), str(export), str(tmp_path / "out"), "--root-mib", "12"])
    assert proc.returncode == 0, proc.stderr
    image = tmp_path / "out" / "meter-ab.img"
    table = run(["sfdisk", "--json", str(image)])
    parts = json.loads(table.stdout)["partitiontable"]
    assert parts["label"] == "gpt"
    by_name = {p["name"]: p for p in parts["partitions"]}
    assert {name: int(p["node"].rsplit("img", 1)[1]) for name, p in by_name.items()} == layout()
    assert by_name["rootfs-a"]["size"] == by_name["rootfs-b"]["size"] == 12 * MIB // 512
    assert by_name["rootfs-a"]["type"] == "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"
    autoboot = fat_file(image, by_name["autoboot"]["start"] * 512, "autoboot.txt")
    assert autoboot == "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"
    for slot in ("a", "b"):
        cmdline = fat_file(image, by_name[f"boot-{slot}"]["start"] * 512, "cmdline.txt")
        root_uuid = by_name[f"rootfs-{slot}"]["uuid"].lower()
        assert cmdline == (f"root=PARTUUID={root_uuid} rauc.slot={slot.upper()} overlayroot=tmpfs:recurse=0 "
                           "console=tty1 rootfstype=ext4 rootwait\n")
    # both root slots hold the release's root file system, which is also the bundle's image
    rootfs = (tmp_path / "out" / "rootfs.img").read_bytes()
    assert len(rootfs) == 12 * MIB
    with image.open("rb") as fh:
        for slot in ("a", "b"):
            fh.seek(by_name[f"rootfs-{slot}"]["start"] * 512)
            assert fh.read(len(rootfs)) == rootfs
    assert fat_file(tmp_path / "out" / "boot.vfat", 0, "cmdline.txt").startswith("overlayroot=")
    # a GPT image (already assembled) is refused
    proc = run(["bash", str(ASSEMBLY), str(image), str(tmp_path / "again")])
    assert proc.returncode == 1 and "expected pi-gen's dos" in proc.stderr


def test_slot_cmdline_points_a_boot_slot_at_its_root(tmp_path: Path) -> None:
    cmdline = tmp_path / "cmdline.txt"
    cmdline.write_text("console=tty1 root=PARTUUID=0000-1 rauc.slot=A rootwait\n")
    proc = run(["sh", str(RAUC / "slot-cmdline"), str(cmdline), "B", "1234abcd-5678"])
    assert proc.returncode == 0, proc.stderr
    assert cmdline.read_text() == "root=PARTUUID=1234abcd-5678 rauc.slot=B console=tty1 rootwait\n"
    for args, message in ((["C", "12"], "slot must be A or B"), (["A", "x y"], "not a partition UUID")):
        proc = run(["sh", str(RAUC / "slot-cmdline"), str(cmdline), *args])
        assert proc.returncode == 2 and message in proc.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(IMAGE)))
def test_shellcheck_clean(script: Path) -> None:
    need("shellcheck")
    proc = run(["shellcheck", "-x", str(script)])
    assert proc.returncode == 0, proc.stdout
