"""The waveform bridge as a :class:`meterd.pq.source.WaveformSource` (docs/waveform-bridge.md).

A :class:`BridgeLink` hands over the bytes the bridge sent (``hw.waveform_bridge.BridgeReceiver``
on the meter: a thread draining the USB CDC device). :class:`BridgeWaveformSource` decodes them
(:class:`meterd.pq.bridge_frames.BridgeDecoder`), turns the chip's codes into volts and amps and
returns blocks of consecutive samples:

* **sample loss**: the frames carry the index of their first sample set (an 8 kHz count of every
  set the chip clocked out, unwrapped from 32 bits here). Sets lost anywhere (dropped by the
  bridge on overrun or lost framing, whole frames lost to corruption) leave a jump in the
  indices: a block never spans one, so :class:`meterd.pq.monitor.PqMonitor` sees the jump,
  restarts its stream and flags the values the gap touches. ``lost_sets`` counts them,
  ``lost_frames`` the frames missing from the sequence numbers;
* **sync**: a frame flagged SYNC_LOST says the bridge saw the chip's DMA framing (the number of
  clocks per set, i.e. the channel order) broken and regained at that frame; ``sync_losses``
  counts them, and a frame whose DMACtrl (channel selection, width) is not the configured one is
  refused (``format_errors``): the channel order cannot be trusted;
* **switching itself off**: without an intact frame for ``stall_s`` (s, the meter's monotonic
  clock) while the link is open, or when the link closes (the bridge unplugged), the source
  goes off with one log line giving the reason and the counters; :attr:`live` is then false
  and the meter falls back to the chip's indicative values. It comes back by itself with the
  first intact frame (after a re-plug: the link reopens), one log line again; the indices of
  a restarted stream start a new block sequence (a gap for the monitor).

UTC of a sample: the end of the last frame taken in by the first poll of a stream is dated with
the meter's UTC of that poll; every sample of the stream is dated from that anchor by its index
(s = index / 8000 Hz), so dates follow the chip's crystal, not the arrival jitter of USB (the
anchor is late by the bridge's latency, 4 ms a frame plus at most one USB frame).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from meterd.pq.bridge_frames import (
    FLAG_OVERRUN,
    FLAG_RESTART,
    FLAG_SYNC_LOST,
    BridgeDecoder,
    BridgeFrame,
    channels_of,
    width_of,
)
from meterd.pq.errors import SampleStreamError
from meterd.pq.source import (
    DEFAULT_SAMPLE_RATE_HZ,
    N_ROWS,
    ROW_I1,
    ROW_I2,
    ROW_I3,
    ROW_IN,
    ROW_U1,
    ROW_U2,
    ROW_U3,
    FloatArray,
    WaveformBlock,
)

log = logging.getLogger(__name__)

DMA_CTRL_ALL_24BIT = 0xFE44
"""DMACtrl the bridge programs: all seven channels (bits 15:9), 24-bit samples (bits 7:6 = 01),
SCLK = 16.384 MHz / (2·4 + 2) = 1.638 MHz (bits 3:0 = 4): 7 × 24 bit × 8 kHz = 1.344 Mbit/s."""

_ROW_OF_CHANNEL = {"V1": ROW_U1, "I1": ROW_I1, "V2": ROW_U2, "I2": ROW_I2, "V3": ROW_U3, "I3": ROW_I3,
                   "I4": ROW_IN}
_INDEX_MOD = 1 << 32


class BridgeLink(Protocol):
    """The byte side of the bridge (a USB CDC device drained by a thread on the meter)."""

    @property
    def connected(self) -> bool:
        """True while the device is open."""
        ...

    @property
    def opens(self) -> int:
        """How many times the device has been opened (a re-plug adds one)."""
        ...

    def take(self) -> bytes:
        """Every byte received since the last call."""
        ...


@dataclass(frozen=True)
class BridgeScale:
    """What one code of the chip's 24-bit samples is worth: ``volts_per_code`` (V) on V1–V3,
    ``amps_per_code`` (A, at the terminals: the board's current scale included) on I1–I4.

    The default is the chip's sample unit (atm90e36.md §7, SagTh): 2 × 52800 / 32768 / 100 V per
    16-bit unit on the voltage channels and 2 × 30000 / 32768 mA on the current channels (the
    RMS registers' gains at their nominal values), 1/256 of that per 24-bit code, times a
    current scale of 2. A board's calibration replaces both.
    """

    volts_per_code: float = 2 * 52800 / 32768 / 100 / 256
    amps_per_code: float = 2 * 2 * 30000 / 32768 / 1000 / 256

    @classmethod
    def nominal(cls, current_scale: int, volts_per_code: float | None = None,
                amps_per_code: float = 0.0) -> BridgeScale:
        """The scale of a board with ``current_scale`` (the chip sees I / k): ``amps_per_code`` when
        given (non-zero), else the chip's sample unit times k; ``volts_per_code`` when given."""
        unit = 2 * 30000 / 32768 / 1000 / 256
        return cls(volts_per_code if volts_per_code is not None else cls().volts_per_code,
                   amps_per_code if amps_per_code > 0 else unit * current_scale)

    def for_width(self, width: int) -> tuple[float, float]:
        """(V, A) per code for samples of ``width`` bytes (the scale is given for 3)."""
        factor = float(1 << (8 * (3 - width))) if width <= 3 else 1.0 / (1 << (8 * (width - 3)))
        return self.volts_per_code * factor, self.amps_per_code * factor


@dataclass
class BridgeCounters:
    """What the source has seen since it started."""

    frames: int = 0
    lost_frames: int = 0
    lost_sets: int = 0
    sync_losses: int = 0
    overruns: int = 0
    restarts: int = 0
    format_errors: int = 0
    switched_off: int = 0


@dataclass(frozen=True)
class BridgeStatus:
    """The source's state for the status view: live, why it is off, the counters of
    :class:`BridgeCounters` and of the decoder."""

    live: bool
    off_reason: str
    frames: int
    lost_frames: int
    lost_sets: int
    sync_losses: int
    overruns: int
    restarts: int
    format_errors: int
    switched_off: int
    crc_errors: int
    header_errors: int
    bytes_discarded: int


class BridgeWaveformSource:
    """Gapless waveform blocks from the waveform bridge; off (``live`` false) when it fails."""

    def __init__(self, link: BridgeLink, mono: Callable[[], float], utc: Callable[[], _dt.datetime],
                 scale: BridgeScale | None = None, dma_ctrl: int = DMA_CTRL_ALL_24BIT,
                 stall_s: float = 2.0, sample_rate_hz: float = DEFAULT_SAMPLE_RATE_HZ) -> None:
        if width_of(dma_ctrl) is None or not channels_of(dma_ctrl):
            raise SampleStreamError(f"DMACtrl 0x{dma_ctrl:04X} selects no channel or a reserved width")
        self._link = link
        self._mono = mono
        self._utc = utc
        self._scale = scale if scale is not None else BridgeScale()
        self._dma_ctrl = dma_ctrl
        self._stall_s = stall_s
        self._fs = sample_rate_hz
        self._decoder = BridgeDecoder()
        self._opens = link.opens
        self._fresh: list[tuple[int, FloatArray]] = []  # taken in by this poll, not dated yet
        self._pending: list[tuple[int, FloatArray, _dt.datetime]] = []  # (index, samples, UTC of the first)
        self._next_index: int | None = None  # unwrapped index after the last set taken in
        self._raw_next: int | None = None  # the same, modulo 2^32, as the bridge counts
        self._resume_at: int | None = None  # where a restarted stream's indices begin
        self._seq: int | None = None
        self._anchor: tuple[int, _dt.datetime] | None = None
        self._last_frame_mono = mono()
        self._live = False
        self.counters = BridgeCounters()
        self.off_reason = "no frame yet"

    @property
    def live(self) -> bool:
        """True while intact frames arrive; false before the first and after switching off."""
        return self._live

    @property
    def link(self) -> BridgeLink:
        """The link the bytes come from."""
        return self._link

    @property
    def decoder(self) -> BridgeDecoder:
        """The frame decoder (its CRC, header and discard counters)."""
        return self._decoder

    def status(self) -> BridgeStatus:
        """Live or off (with the reason), and the counters of the source and its decoder."""
        dec = self._decoder
        return BridgeStatus(live=self._live, off_reason="" if self._live else self.off_reason,
                            crc_errors=dec.crc_errors, header_errors=dec.header_errors,
                            bytes_discarded=dec.bytes_discarded, **dataclasses.asdict(self.counters))

    def read_block(self, max_samples: int = 8000) -> WaveformBlock | None:
        """The next run of consecutive samples (at most ``max_samples``), or None when none is ready.

        Each call first takes in whatever the link received; a block ends at a gap in the indices.
        """
        self._poll()
        if not self._pending:
            return None
        first, _, utc_first = self._pending[0]
        parts: list[FloatArray] = []
        n = 0
        while self._pending and n < max_samples:
            start, samples, utc = self._pending[0]
            if start != first + n:
                break
            take = min(samples.shape[1], max_samples - n)
            parts.append(samples[:, :take])
            if take < samples.shape[1]:
                self._pending[0] = (start + take, samples[:, take:], utc + _dt.timedelta(seconds=take / self._fs))
            else:
                self._pending.pop(0)
            n += take
        block = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        return WaveformBlock(first, np.ascontiguousarray(block), self._fs, utc_first)

    def _poll(self) -> None:
        """Take in the link's bytes; switch off or on."""
        if self._link.opens != self._opens:  # re-plugged: a new byte stream
            self._opens = self._link.opens
            self._decoder.reset()
            self._restart_stream()
        data = self._link.take()
        if data:
            for event in self._decoder.feed(data):
                if isinstance(event, BridgeFrame):
                    self._on_frame(event)
        self._seal()
        now = self._mono()
        if self._live and not self._link.connected:
            self._switch_off("the bridge's device closed (unplugged?)")
        elif self._live and now - self._last_frame_mono > self._stall_s:
            self._switch_off(f"no intact frame for {now - self._last_frame_mono:.1f} s")

    def _on_frame(self, frame: BridgeFrame) -> None:
        c = self.counters
        if frame.dma_ctrl != self._dma_ctrl:
            c.format_errors += 1
            if c.format_errors == 1:
                log.warning("waveform bridge: frame with DMACtrl 0x%04X, expected 0x%04X: refused",
                            frame.dma_ctrl, self._dma_ctrl)
            return
        c.frames += 1
        self._last_frame_mono = self._mono()
        if frame.flags & FLAG_RESTART:
            self._restart_stream()
        if self._seq is not None:
            c.lost_frames += (frame.seq - self._seq - 1) & 0xFFFF
        self._seq = frame.seq
        if frame.flags & FLAG_SYNC_LOST:
            c.sync_losses += 1
            log.warning("waveform bridge: DMA framing lost and regained at set %d (%d sync losses)",
                        frame.first_index, c.sync_losses)
        if frame.flags & FLAG_OVERRUN:
            c.overruns += 1
        index = self._unwrap(frame.first_index)
        if self._next_index is not None and index > self._next_index:
            c.lost_sets += index - self._next_index
        self._fresh.append((index, self._samples(frame)))
        self._next_index = index + frame.n_sets
        self._raw_next = (frame.first_index + frame.n_sets) % _INDEX_MOD
        if not self._live:
            self._live = True
            log.info("waveform bridge on: samples from set %d (frames %d, lost frames %d, sync losses %d)",
                     frame.first_index, c.frames, c.lost_frames, c.sync_losses)

    def _unwrap(self, raw: int) -> int:
        """The meter's (unwrapped, ever growing) index of a frame's first set."""
        if self._raw_next is not None and self._next_index is not None:
            step = (raw - self._raw_next) % _INDEX_MOD
            if step < _INDEX_MOD // 2:
                return self._next_index + step
            self._restart_stream()  # behind what was taken in: the bridge counts afresh
        return raw if self._resume_at is None else self._resume_at

    def _restart_stream(self) -> None:
        """A new stream begins: it continues one second (of indices) after the last, a gap the
        monitor restarts at, and is dated afresh."""
        self._seal()
        if self._next_index is not None:
            self.counters.restarts += 1
            self._resume_at = self._next_index + int(self._fs)
        self._next_index = None
        self._raw_next = None
        self._seq = None
        self._anchor = None

    def _seal(self) -> None:
        """Date the samples taken in by this poll: the end of the last arrived now (meter UTC)."""
        if not self._fresh:
            return
        if self._anchor is None:
            last_index, last = self._fresh[-1]
            self._anchor = (last_index + last.shape[1], self._utc())
        anchor_index, anchor_utc = self._anchor
        for index, samples in self._fresh:
            self._pending.append((index, samples,
                                  anchor_utc + _dt.timedelta(seconds=(index - anchor_index) / self._fs)))
        self._fresh.clear()

    def _samples(self, frame: BridgeFrame) -> FloatArray:
        """The frame's codes as (7, n) volts and amps in the rows of :mod:`meterd.pq.source`."""
        width = frame.width
        raw = np.frombuffer(frame.payload, dtype=np.uint8).reshape(frame.n_sets, -1, width).astype(np.int64)
        codes = np.zeros(raw.shape[:2], dtype=np.int64)
        for b in range(width):
            codes = (codes << 8) | raw[:, :, b]
        sign = 1 << (8 * width - 1)
        codes = (codes ^ sign) - sign
        volts, amps = self._scale.for_width(width)
        out = np.zeros((N_ROWS, frame.n_sets))
        for col, name in enumerate(frame.channels):
            out[_ROW_OF_CHANNEL[name]] = codes[:, col] * (volts if name[0] == "V" else amps)
        return out

    def _switch_off(self, reason: str) -> None:
        c = self.counters
        c.switched_off += 1
        self._live = False
        self.off_reason = reason
        self._decoder.reset()
        log.warning("waveform bridge off: %s; frames %d, lost frames %d, lost sets %d, CRC errors %d, "
                    "sync losses %d; power quality falls back to the chip's indicative values",
                    reason, c.frames, c.lost_frames, c.lost_sets, self._decoder.crc_errors, c.sync_losses)
