"""A simulated waveform bridge: the waveform ATM90E36 in DMA mode and the RP2040 that frames its
sample sets, behind a pty that stands for the USB CDC device (docs/waveform-bridge.md).

* :class:`SimDmaChip` is the waveform chip: the samples of :class:`hw.sim.grid.Grid` as the
  chip's 24-bit codes (DMACtrl 0xFE44: I4, I1, V1, I2, V2, I3, V3, MSB first), at the sample
  unit the meter's default scale assumes (``VOLTS_PER_CODE``, ``AMPS_PER_CODE``: the chip's
  SagTh unit at the nominal gains, 1/256 per 24-bit code, currents through a current scale of 2).
* :class:`SimBridge` is the firmware's framing: 32 sets a frame (4 ms), sequence numbers, the
  32-bit set index, CRC-32; a bounded send buffer like the RP2040's (``buffer_bytes``, 96 KiB:
  its DMA ring and send queue): when the
  host does not read, sets are dropped and the next frame says OVERRUN. Faults the tests ask
  for: frames lost in transit, bytes corrupted on the way, the DMA framing lost (a set dropped,
  SYNC_LOST on the next frame).
* :class:`SimBridgeDevice` is the USB side: a pty pair whose slave is reached through a stable
  symlink (as udev's ``/dev/serial/by-id/...``); :meth:`SimBridgeDevice.unplug` closes the pty
  (the meter's reads fail as on a pulled cable), :meth:`SimBridgeDevice.plug` makes a new one
  behind the same path, and the bridge restarts (index 0, RESTART flag).
* :class:`PacedBridge` feeds the device at the real byte timing from a thread: each frame is
  written when its last set has been sampled (every 4 ms), in one burst as a USB full-speed
  frame (1 ms, up to 19 × 64 bytes) carries it.

The wire format is written here from the document, independently of the meter's decoder (hw
imports nothing of the meter), so the tests check one against the other.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import struct
import threading
import time
import tty
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hw.errors import HwError

DMA_CTRL = 0xFE44
"""All seven channels, 24-bit samples, SCLK 1.638 MHz."""
SAMPLE_RATE_HZ = 8000
SETS_PER_FRAME = 32
VOLTS_PER_CODE = 2 * 52800 / 32768 / 100 / 256
"""V per 24-bit code on V1–V3: the SagTh sample unit at Ugain 52800 (atm90e36.md §7), / 256."""
CURRENT_SCALE = 2
AMPS_PER_CODE = CURRENT_SCALE * 2 * 30000 / 32768 / 1000 / 256
"""A (at the terminals) per 24-bit code on I1–I4: the same rule at Igain 30000 (1 mA RMS unit),
through the board's current scale."""
WIRE_ROWS = (6, 1, 0, 3, 2, 5, 4)
"""The grid's rows (U1 I1 U2 I2 U3 I3 IN) in the chip's wire order I4 I1 V1 I2 V2 I3 V3."""
FLAG_SYNC_LOST, FLAG_OVERRUN, FLAG_RESTART = 0x01, 0x02, 0x04
_CODE_MAX = (1 << 23) - 1


class SimBridgeError(HwError):
    """The simulated bridge's device cannot be made or written."""


class SimDmaChip:
    """The waveform chip's DMA stream over a grid: ``payload(start, n)`` are sets ``start`` …
    ``start + n − 1`` of the grid's sample index, as bytes on the wire."""

    def __init__(self, grid: object, volts_per_code: float = VOLTS_PER_CODE,
                 amps_per_code: float = AMPS_PER_CODE) -> None:
        self._grid = grid
        self._scale = np.array([amps_per_code, amps_per_code, volts_per_code, amps_per_code, volts_per_code,
                                amps_per_code, volts_per_code])[:, None]

    def payload(self, start: int, n: int) -> bytes:
        samples = self._grid.waveform_block(start, n)  # type: ignore[attr-defined]
        codes = np.clip(np.rint(samples[list(WIRE_ROWS)] / self._scale), -_CODE_MAX - 1, _CODE_MAX).astype(np.int64)
        words = np.ascontiguousarray((codes.T & 0xFFFFFF).astype(">u4")).view(np.uint8).reshape(n, len(WIRE_ROWS), 4)
        return words[:, :, 1:].tobytes()


def encode_frame(seq: int, flags: int, first_index: int, n_sets: int, payload: bytes, sync_losses: int = 0,
                 dma_ctrl: int = DMA_CTRL, width: int = 3) -> bytes:
    """One frame of docs/waveform-bridge.md: 16-byte header, payload, CRC-32 (little-endian)."""
    head = struct.pack("<2sBBHBBIHBB", b"WB", 1, flags, seq & 0xFFFF, n_sets, width, first_index & 0xFFFFFFFF,
                       dma_ctrl, sync_losses & 0xFF, 0)
    body = head + payload
    return body + struct.pack("<I", zlib.crc32(body))


class SimBridge:
    """The bridge firmware's framing and send buffer, driven by the set index it has sampled to.

    ``payload(start, n)`` gives the chip's sets by the bridge's own index (0 = the first set after
    the bridge started); :meth:`sample_to` frames every whole frame up to an index, into the send
    buffer; :meth:`take` empties the buffer (what the USB host fetched).
    """

    def __init__(self, payload: Callable[[int, int], bytes], sets_per_frame: int = SETS_PER_FRAME,
                 buffer_bytes: int = 96 * 1024, seed: int = 0) -> None:
        self._payload = payload
        self.sets_per_frame = sets_per_frame
        self.buffer_bytes = buffer_bytes
        self._rng = random.Random(seed)
        self._out = bytearray()
        self.next_index = 0
        self.seq = 0
        self.sync_losses = 0
        self.frames_sent = 0
        self.sets_dropped = 0
        self._flags = FLAG_RESTART
        self.drop_next = 0
        self.corrupt_next = 0
        self.lose_sync_next = False

    def sample_to(self, index: int) -> None:
        """Frame the sets up to ``index`` (whole frames only; the rest waits for more sets)."""
        n = self.sets_per_frame
        skip = 1 if self.lose_sync_next else 0  # a set with the wrong clock count: dropped
        n_frames = (index - self.next_index - skip) // n
        if n_frames <= 0:
            return
        start = self.next_index
        total = n_frames * n + skip
        data = self._payload(start, total)
        per_set = len(data) // total
        if skip:
            self.lose_sync_next = False
            self.sync_losses += 1
            self._flags |= FLAG_SYNC_LOST
            self.sets_dropped += 1
        for k in range(n_frames):
            lo = skip + k * n
            self._frame(start + lo, data[lo * per_set:(lo + n) * per_set])

    def _frame(self, first: int, payload: bytes) -> None:
        n = self.sets_per_frame
        frame = encode_frame(self.seq, self._flags, first, n, payload, self.sync_losses)
        self.next_index = first + n
        if len(self._out) + len(frame) > self.buffer_bytes:
            self._flags |= FLAG_OVERRUN  # the host is not reading: the sets are lost
            self.sets_dropped += n
            return
        self._flags = 0
        self.seq = (self.seq + 1) & 0xFFFF
        if self.drop_next:  # lost between the bridge and the meter
            self.drop_next -= 1
            return
        if self.corrupt_next:
            self.corrupt_next -= 1
            damaged = bytearray(frame)
            for _ in range(3):
                damaged[self._rng.randrange(len(damaged))] ^= 1 << self._rng.randrange(8)
            frame = bytes(damaged)
        self._out += frame
        self.frames_sent += 1

    @property
    def buffered(self) -> int:
        """Bytes waiting in the send buffer."""
        return len(self._out)

    def take(self, limit: int | None = None) -> bytes:
        """Up to ``limit`` bytes from the send buffer (all by default)."""
        n = len(self._out) if limit is None else min(limit, len(self._out))
        data = bytes(self._out[:n])
        del self._out[:n]
        return data

    def give_back(self, data: bytes) -> None:
        """Bytes the device did not accept go back to the front of the buffer."""
        self._out[:0] = data


class SimBridgeDevice:
    """The bridge's USB CDC device as a pty behind a stable symlink ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._master = -1
        self._slave = -1
        self.plug()

    @property
    def plugged(self) -> bool:
        return self._master >= 0

    def plug(self) -> None:
        """A new device behind ``path`` (a bridge plugged in)."""
        if self.plugged:
            return
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        tmp = self.path.with_name(self.path.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.path)

    def unplug(self) -> None:
        """The device disappears: its path is removed and the open end fails."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1

    def write(self, data: bytes) -> int:
        """Write what the device takes without waiting (bytes written)."""
        if not self.plugged:
            return 0
        try:
            return os.write(self._master, data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EIO):
                return 0
            raise SimBridgeError(f"bridge pty: {exc}") from exc

    def drain_from(self, bridge: SimBridge) -> int:
        """Move what the device accepts from the bridge's send buffer (bytes moved)."""
        moved = 0
        while bridge.buffered:
            chunk = bridge.take(4096)
            n = self.write(chunk)
            moved += n
            if n < len(chunk):
                bridge.give_back(chunk[n:])
                break
        return moved

    def close(self) -> None:
        self.unplug()


class PacedBridge:
    """A thread that samples and sends at the real rate: set ``i`` exists ``i / 8000`` s after the
    start, a frame is sent when its last set exists, the USB host polls every 1 ms."""

    def __init__(self, bridge: SimBridge, device: SimBridgeDevice, clock: Callable[[], float] = time.monotonic) -> None:
        self._bridge = bridge
        self._device = device
        self._clock = clock
        self._stop = threading.Event()
        self._t0 = clock()
        self._thread = threading.Thread(target=self._run, name="sim-waveform-bridge", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.001):  # one USB full-speed frame
            index = int((self._clock() - self._t0) * SAMPLE_RATE_HZ)
            self._bridge.sample_to(index)
            self._device.drain_from(self._bridge)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
