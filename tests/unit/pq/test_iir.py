"""The chain's IIR filters in numpy against scipy.signal (a development dependency only): the
designs (Butterworth low/high-pass with prewarping, the IEC 61000-4-15 weighting filter by the
bilinear transform, the rest states) and the block-lifted filtering, fed in calls of random size."""

from __future__ import annotations

import numpy as np
import pytest

from meterd.pq import iir
from meterd.pq.flicker import weighting_filter_analog

signal = pytest.importorskip("scipy.signal")


def response(sos: np.ndarray, fs_hz: float) -> np.ndarray:
    return np.asarray(signal.sosfreqz(sos, worN=np.linspace(0.0, fs_hz / 2 * 0.999, 400), fs=fs_hz)[1])


@pytest.mark.parametrize(("order", "cutoff_hz", "fs_hz", "highpass"), [
    (6, 150.0, 8000.0, False), (2, 60.0, 8000.0, False), (2, 72.0, 8000.0, False),
    (6, 35.0, 1000.0, False), (6, 42.0, 1000.0, False), (1, 0.05, 1000.0, True), (3, 100.0, 1000.0, True)])
def test_butterworth_is_scipys(order: int, cutoff_hz: float, fs_hz: float, highpass: bool) -> None:
    mine = iir.butter_sos(order, cutoff_hz, fs_hz, highpass=highpass)
    ref = signal.butter(order, cutoff_hz, btype="highpass" if highpass else "lowpass", fs=fs_hz, output="sos")
    np.testing.assert_allclose(response(mine, fs_hz), response(ref, fs_hz), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(np.sort_complex(signal.sos2zpk(mine)[1]), np.sort_complex(signal.sos2zpk(ref)[1]),
                               rtol=1e-12)


@pytest.mark.parametrize("lamp", ["230V", "120V"])
def test_weighting_filter_is_scipys_bilinear_transform(lamp: str) -> None:
    num, den = weighting_filter_analog(lamp)
    mine = iir.bilinear_sos(num, den, 1000.0)
    b, a = signal.bilinear(num, den, fs=1000.0)
    f = np.geomspace(0.05, 490.0, 300)  # Hz; the zero at 0 Hz left out (relative error)
    got = signal.sosfreqz(mine, worN=f, fs=1000.0)[1]
    np.testing.assert_allclose(got, signal.freqz(b, a, worN=f, fs=1000.0)[1], rtol=1e-9)
    warped = 2 * 1000.0 * np.tan(np.pi * f / 1000.0)  # rad/s: the analog frequency each one maps to
    np.testing.assert_allclose(got, np.polyval(num, 1j * warped) / np.polyval(den, 1j * warped), rtol=1e-10)


def test_rest_state_is_sosfilt_zi() -> None:
    for sos in (signal.butter(6, 150.0, fs=8000.0, output="sos"), signal.butter(1, 0.05, "highpass", fs=1000.0,
                                                                                 output="sos")):
        np.testing.assert_allclose(iir.steady_state(sos), signal.sosfilt_zi(sos), rtol=1e-12, atol=1e-15)


def test_bad_designs_are_refused() -> None:
    with pytest.raises(ValueError):
        iir.butter_sos(2, 5000.0, 8000.0)
    with pytest.raises(ValueError):
        iir.butter_sos(0, 50.0, 8000.0)


def chain_sos() -> np.ndarray:
    """The flickermeter's 1-kHz cascade: 0.05 Hz high-pass, 35 Hz 6th-order low-pass, 230 V weighting."""
    wb, wa = signal.bilinear(*weighting_filter_analog("230V"), fs=1000.0)
    return np.vstack([signal.butter(1, 0.05, "highpass", fs=1000.0, output="sos"),
                      signal.butter(6, 35.0, fs=1000.0, output="sos"), signal.tf2sos(wb, wa)])


@pytest.mark.parametrize("kind", ["anti-alias", "prefilter", "chain"])
def test_block_filtering_matches_sosfilt_and_ignores_how_the_stream_is_cut(kind: str) -> None:
    rng = np.random.default_rng(7)
    fs = 1000.0 if kind == "chain" else 8000.0
    n = 30_000
    t = np.arange(n) / fs
    if kind == "chain":  # a normalised squared voltage with 8.8 Hz flicker
        sos = chain_sos()
        x = np.stack([1 + a * np.sin(2 * np.pi * 8.8 * t) + 1e-4 * rng.standard_normal(n) for a in (0.001, 0.01, 0.05)])
        zi = np.zeros((sos.shape[0], 3, 2))
        zi[0] = signal.sosfilt_zi(sos[:1])[0]
    else:
        sos = signal.butter(6, 150.0, fs=fs, output="sos") if kind == "anti-alias" else \
            signal.butter(2, 60.0, fs=fs, output="sos")
        x = np.stack([325 * np.sin(2 * np.pi * 50 * t + ph) + 5 * rng.standard_normal(n) for ph in (0.0, 2.1, 4.2)])
        if kind == "anti-alias":
            x = x * x
        zi = signal.sosfilt_zi(sos)[:, None, :] * np.mean(x[:, :8000], axis=1)[None, :, None]
    want, _ = signal.sosfilt(sos, x, axis=-1, zi=zi)

    whole = iir.SosFilter(sos, 3)
    whole.state = zi
    got = whole.filter(x)
    scale = np.max(np.abs(want), axis=1, keepdims=True)
    assert np.max(np.abs(got - want) / scale) < 1e-9

    cut = iir.SosFilter(sos, 3)
    cut.state = zi
    parts, at = [], 0
    for size in [1, 63, 64, 65, 137, 0, 8000, *rng.integers(1, 3000, size=40).tolist()]:
        parts.append(cut.filter(x[:, at : at + size]))
        at += size
    parts.append(cut.filter(x[:, at:]))
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), got)  # bit for bit
    np.testing.assert_allclose(cut.state, signal.sosfilt(sos, x[:, : n // 64 * 64], axis=-1, zi=zi)[1],
                               rtol=1e-9, atol=1e-9 * float(np.max(scale)))


def test_state_is_set_only_at_a_block_boundary() -> None:
    f = iir.SosFilter(iir.butter_sos(2, 60.0, 8000.0), 1)
    f.filter(np.ones((1, 10)))
    with pytest.raises(ValueError):
        f.state = np.zeros((1, 1, 2))


@pytest.mark.parametrize("offset", [0, 3, 7])
def test_a_decimating_filter_gives_the_kept_outputs_however_the_stream_is_cut(offset: int) -> None:
    """``every = 8``: the outputs at positions ≡ offset (mod 8) only, the same values as the whole
    filter's there (the same products), whatever the calls' sizes; the state runs on unchanged."""
    rng = np.random.default_rng(11)
    sos = iir.butter_sos(6, 150.0, 8000.0)
    n = 20_000
    x = (325 * np.sin(2 * np.pi * 50 * np.arange(n) / 8000.0)[None, :] + rng.standard_normal((2, n))) ** 2
    zi = iir.steady_state(sos)[:, None, :] * np.mean(x[:, :8000], axis=1)[None, :, None]
    full = iir.SosFilter(sos, 2)
    full.state = zi
    want = full.filter(x)[:, offset::8]

    kept = iir.SosFilter(sos, 2, every=8, offset=offset)
    kept.state = zi
    parts, at = [], 0
    for size in [1, 7, 8, 9, 63, 64, 65, 0, 8000, *rng.integers(1, 2000, size=20).tolist()]:
        parts.append(kept.filter(x[:, at : at + size]))
        at += size
    parts.append(kept.filter(x[:, at:]))
    got = np.concatenate(parts, axis=1)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0.0)
    np.testing.assert_array_equal(kept.state, full.state)
    with pytest.raises(ValueError):
        iir.SosFilter(sos, 1, every=3)  # not a divisor of the 64-sample block
