# PMM Reference Meter — developer entry points.
# `make run` and `make test` work on a fresh Debian/Ubuntu machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_DIR ?= var/run-sim
JOBS ?= 2

.PHONY: all setup run test soak lint bench bundle bridge-firmware clean

all: test

# Debian/Ubuntu packages the meter and its tests need: venv support, libfribidi (Arabic text
# shaping through Pillow's raqm), systemd-analyze (offline unit verification), and the image
# recipe's checks (shellcheck, dtc, lintian, partitioning and filesystem tools), and a headless
# browser for the dashboard's tests (chromium, chromium-driver) and the PDF renderer for the
# accuracy report's tests (poppler-utils); RAUC and squashfs-tools for the A/B update bundles, chrony
# for trusted time, and a D-Bus daemon with the headers dbus-python builds against (the ModemManager
# stand-in of the communications tests), with the compiler and Python headers
# its build needs (dbus-python ships no wheels), and the ARM cross compiler of the waveform
# bridge's RP2040 firmware.
SYS_PKGS := python3-venv libfribidi0 systemd shellcheck device-tree-compiler lintian gdisk fdisk dosfstools mtools e2fsprogs \
	chromium chromium-driver poppler-utils rauc squashfs-tools chrony dbus libdbus-1-dev libglib2.0-dev pkg-config gcc python3-dev \
	gcc-arm-none-eabi

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "python3 is required (apt-get install python3 python3-venv)"; exit 1; }
	@bash tools/sysdeps.sh $(SYS_PKGS)
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VPY) -m meterd.app.simrun --config config/sim.toml --state-dir $(RUN_DIR)

# Every test, with the short form of the soak tests (`make soak` runs their full length).
test: $(STAMP)
	$(VPY) -m pytest -n $(JOBS) --dist loadfile --no-loadscope-reorder -q -m 'not slow' tests

soak: $(STAMP)
	PMM_SOAK=1 $(VPY) -m pytest -q -m slow tests

lint: $(STAMP)
	$(VENV)/bin/ruff check meterd hw ciu tests bench
	$(VENV)/bin/mypy meterd hw ciu
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(VPY) $$b || exit 1; done

# A signed RAUC update bundle of this release (docs/firmware.md): signed with the development key
# (made in image/keys/dev/, git-ignored) unless SIGNING_CERT and SIGNING_KEY name production ones
# outside the tree; ROOTFS is the release's root filesystem image, else a stand-in of BUNDLE_MB MiB;
# ENCRYPT_TO a meter's certificate: a crypt bundle only its key opens.
BUNDLE_VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
BUNDLE_MB ?= 32
bundle:
	PYTHON=$(VPY) image/rauc/build-bundle.sh --version $(BUNDLE_VERSION) \
		$(if $(ROOTFS),--rootfs $(ROOTFS),--size-mb $(BUNDLE_MB)) \
		$(if $(SIGNING_CERT),--cert $(SIGNING_CERT) --key $(SIGNING_KEY)) \
		$(if $(ENCRYPT_TO),--encrypt-to $(ENCRYPT_TO))

# The waveform bridge's RP2040 firmware (docs/waveform-bridge.md): firmware/waveform-bridge/build/
# waveform-bridge.uf2, and the host check of its framing.
bridge-firmware:
	@command -v arm-none-eabi-gcc >/dev/null || bash tools/sysdeps.sh gcc-arm-none-eabi
	$(MAKE) -C firmware/waveform-bridge

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
