"""IIR filters of the waveform chain, designed and run in numpy (no scipy at run time).

Design: a Butterworth low- or high-pass from its analog prototype (poles on the unit circle of
the s-plane), its cut-off prewarped (2·fs·tan(π·fc/fs)) and mapped to z by the bilinear
transform, returned as second-order sections ``[b0, b1, b2, 1, a1, a2]`` (each row one section,
the gain in the first); :func:`bilinear_sos` maps any analog transfer function (polynomials in s,
descending powers) to z the same way without prewarping (the IEC 61000-4-15 weighting filter).

Filtering: :class:`SosFilter` runs a cascade of sections in transposed direct form II (its state
per section is the ``zi`` of scipy's ``sosfilt``) lifted to blocks of ``L`` samples. With the
cascade's state-space form (A, B, C, D) the outputs of one block are ``y = H·x + O·s`` and the
state after it ``s' = A^L·s + R·x``, H the L×L lower-triangular Toeplitz matrix of the impulse
response, O the rows C·A^k and R the columns A^(L−1−j)·B. Every channel is a row of one matrix
product. Blocks lie on a fixed grid counted from the filter's first sample; a block a call ends
in the middle of is computed zero-padded from the state at its start (H is lower triangular, so
the padding adds exact zeros) and again, whole, when the next call completes it. So every output
is the same floating-point arithmetic however the stream is cut into calls.
"""

from __future__ import annotations

import math

import numpy as np

from meterd.pq.source import FloatArray

ComplexArray = np.ndarray


def _zpk_bilinear(z: ComplexArray, p: ComplexArray, k: float, fs_hz: float) -> tuple[ComplexArray, ComplexArray, float]:
    """Map analog zeros/poles/gain to z with s = 2·fs·(z − 1)/(z + 1); missing zeros go to z = −1."""
    fs2 = 2.0 * fs_hz
    zz = (fs2 + z) / (fs2 - z)
    pz = (fs2 + p) / (fs2 - p)
    zz = np.concatenate((zz, -np.ones(len(p) - len(z))))
    gain = k * float(np.real(np.prod(fs2 - z) / np.prod(fs2 - p)))
    return zz, pz, gain


def _groups(roots: ComplexArray) -> list[tuple[complex, ...]]:
    """Roots as conjugate pairs (one tuple each) and real roots paired two by two (or left alone)."""
    tol = 1e-10
    cplx = sorted((complex(r) for r in roots if r.imag > tol * max(1.0, abs(r))), key=lambda r: (r.real, r.imag))
    reals = sorted(float(r.real) for r in roots if abs(r.imag) <= tol * max(1.0, abs(r)))
    groups: list[tuple[complex, ...]] = [(r, r.conjugate()) for r in cplx]
    groups += [tuple(complex(x) for x in reals[i : i + 2]) for i in range(0, len(reals), 2)]
    return groups


def zpk_to_sos(z: ComplexArray, p: ComplexArray, k: float) -> FloatArray:
    """Second-order sections of a digital filter from its zeros, poles (conjugates complete) and gain.

    Pole pairs are ordered from the farthest from the unit circle to the nearest (the sharpest
    resonance last, as is usual); zero groups are taken in order; the gain goes to the first section.
    """
    pg = sorted(_groups(p), key=lambda g: -max(abs(1 - abs(r)) for r in g))
    zg = _groups(z)
    n = max(len(pg), len(zg))
    sos = np.zeros((n, 6))
    for i in range(n):
        zeros = zg[i] if i < len(zg) else ()
        poles = pg[i] if i < len(pg) else ()
        b = np.real(np.poly(zeros)) if zeros else np.array([1.0])
        a = np.real(np.poly(poles)) if poles else np.array([1.0])
        sos[i, : len(b)] = b  # b, a padded on the right: a first-order section has b2 = a2 = 0
        sos[i, 3 : 3 + len(a)] = a
    sos[0, :3] *= k
    return sos


def butter_sos(order: int, cutoff_hz: float, fs_hz: float, highpass: bool = False) -> FloatArray:
    """Butterworth low-pass (or high-pass) of ``order`` with −3 dB at ``cutoff_hz`` (Hz), sampled at ``fs_hz``."""
    if not 0 < cutoff_hz < fs_hz / 2 or order < 1:
        raise ValueError(f"no Butterworth of order {order} at {cutoff_hz} Hz for fs {fs_hz} Hz")
    m = np.arange(-order + 1, order, 2)
    proto = -np.exp(1j * math.pi * m / (2 * order))  # analog prototype poles, cut-off 1 rad/s
    warped = 2.0 * fs_hz * math.tan(math.pi * cutoff_hz / fs_hz)  # rad/s
    if highpass:
        z = np.zeros(order, dtype=complex)
        p = warped / proto
        k = float(np.real(1.0 / np.prod(-proto)))
    else:
        z = np.zeros(0, dtype=complex)
        p = warped * proto
        k = warped**order
    return zpk_to_sos(*_zpk_bilinear(z, p, k, fs_hz))


def bilinear_sos(num: FloatArray, den: FloatArray, fs_hz: float) -> FloatArray:
    """Second-order sections of the analog H(s) = num(s)/den(s) (descending powers) by the bilinear transform."""
    num = np.trim_zeros(np.asarray(num, dtype=np.float64), "f")
    den = np.trim_zeros(np.asarray(den, dtype=np.float64), "f")
    z, p = np.roots(num), np.roots(den)
    k = float(num[0] / den[0])
    return zpk_to_sos(*_zpk_bilinear(z, p, k, fs_hz))


def state_space(sos: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, float]:
    """(A, B, C, D) of the cascade in transposed direct form II, two states per section (section-major)."""
    sos = np.asarray(sos, dtype=np.float64)
    n = 2 * sos.shape[0]
    a_m, b_v, c_v = np.zeros((n, n)), np.zeros(n), np.zeros(n)
    d = 1.0
    for i, (b0, b1, b2, a0, a1, a2) in enumerate(sos):
        b0, b1, b2, a1, a2 = b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0
        j = 2 * i
        # the section's input u = c·s + d·x (the previous sections' output): y = b0·u + z0,
        # z0' = b1·u − a1·y + z1, z1' = b2·u − a2·y
        g = np.array([b1 - a1 * b0, b2 - a2 * b0])
        a_m[j : j + 2, :] += np.outer(g, c_v)
        a_m[j : j + 2, j : j + 2] += np.array([[-a1, 1.0], [-a2, 0.0]])
        b_v[j : j + 2] = g * d
        c_v = b0 * c_v
        c_v[j] += 1.0
        d *= b0
    return a_m, b_v, c_v, d


def steady_state(sos: FloatArray) -> FloatArray:
    """Section states (sections, 2) at rest under a constant input of 1 (scipy's ``sosfilt_zi``)."""
    sos = np.asarray(sos, dtype=np.float64)
    zi = np.zeros((sos.shape[0], 2))
    u = 1.0
    for i, (b0, b1, b2, a0, a1, a2) in enumerate(sos):
        b0, b1, b2, a1, a2 = b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0
        y = u * (b0 + b1 + b2) / (1.0 + a1 + a2)
        zi[i] = (y - b0 * u, b2 * u - a2 * y)
        u = y
    return zi


class SosFilter:
    """A cascade of second-order sections over ``channels`` channels in lock-step, in exact blocks.

    ``state``, shape (sections, channels, 2), is scipy's ``zi`` layout: set it (e.g. from
    :func:`steady_state`) before the first samples; it is the state at the last block boundary.

    ``every`` > 1 (a divisor of ``block``): only the outputs at positions p ≡ ``offset`` (mod
    ``every``) are computed and returned, p counted from the filter's first sample (a filter
    ahead of a decimation): each block's product then has ``block/every`` output columns instead
    of ``block``; the state runs over every sample as before.
    """

    def __init__(self, sos: FloatArray, channels: int, block: int = 64, every: int = 1, offset: int = 0) -> None:
        if every < 1 or block % every:
            raise ValueError("every must be a positive divisor of the block")
        self.sos = np.asarray(sos, dtype=np.float64)
        a_m, b_v, c_v, d = state_space(self.sos)
        n = a_m.shape[0]
        self._n, self._block, self._channels = n, block, channels
        h = np.zeros(block)
        obs = np.zeros((block, n))
        reach = np.zeros((n, block))
        h[0] = d
        row = c_v.copy()  # C·A^k
        col = b_v.copy()  # A^k·B
        for k in range(block):
            obs[k] = row
            reach[:, block - 1 - k] = col
            if k + 1 < block:
                h[k + 1] = row @ b_v
            row = row @ a_m
            col = a_m @ col
        toeplitz = np.zeros((block, block))
        for k in range(block):
            toeplitz[np.arange(k, block), np.arange(0, block - k)] = h[k]
        # one product per block: [x, s] @ [[H^T, R^T], [O^T, (A^L)^T]] = [y, s']
        lifted = np.zeros((block + n, block + n))
        lifted[:block, :block] = toeplitz.T
        lifted[:block, block:] = reach.T
        lifted[block:, :block] = obs.T
        lifted[block:, block:] = np.linalg.matrix_power(a_m, block).T
        self._columns = np.arange(offset % every, block, every)  # outputs computed within a block
        self._lifted = np.ascontiguousarray(lifted[:, np.concatenate((self._columns, np.arange(block, block + n)))])
        self._s = np.zeros((channels, n))
        self._pending = np.zeros((channels, 0))

    @property
    def state(self) -> FloatArray:
        """Section states at the last block boundary, shape (sections, channels, 2)."""
        return np.asarray(self._s.reshape(self._channels, -1, 2).transpose(1, 0, 2))

    @state.setter
    def state(self, zi: FloatArray) -> None:
        if self._pending.shape[1]:
            raise ValueError("the state can only be set at a block boundary (before the first samples)")
        zi = np.broadcast_to(np.asarray(zi, dtype=np.float64), (self.sos.shape[0], self._channels, 2))
        self._s = np.ascontiguousarray(zi.transpose(1, 0, 2).reshape(self._channels, self._n))

    def filter(self, x: FloatArray) -> FloatArray:
        """Filtered samples of consecutive calls, shape (channels, n) as ``x`` (with ``every`` > 1:
        only the outputs at the chosen positions among this call's samples)."""
        held = self._pending.shape[1]
        xa = np.asarray(x, dtype=np.float64)
        buf = np.concatenate((self._pending, xa), axis=1) if held else xa
        total, size = buf.shape[1], self._block
        if total == 0:
            return np.zeros((self._channels, 0))
        complete = total // size
        rest = total - complete * size
        blocks = complete + (rest > 0)
        # every block as [x of the block, state at its start], one row per channel: one
        # (channels, size + n) · lifted product per block, without copies in the loop
        work = np.zeros((blocks, self._channels, size + self._n))
        work[:complete, :, :size] = buf[:, : complete * size].reshape(self._channels, complete, size).transpose(1, 0, 2)
        if rest:
            work[complete, :, :rest] = buf[:, complete * size :]
        m = self._columns.size
        result = np.empty((blocks, self._channels, m + self._n))
        state = self._s
        lifted = self._lifted
        for k in range(blocks):
            w = work[k]
            w[:, size:] = state
            np.matmul(w, lifted, out=result[k])
            state = result[k, :, m:]
        if complete:
            self._s = np.array(result[complete - 1, :, m:])
        out = result[:, :, :m].transpose(1, 0, 2).reshape(self._channels, blocks * m)
        if m < size:  # the computed outputs of this call's samples only
            positions = (np.arange(blocks)[:, None] * size + self._columns[None, :]).ravel()
            self._pending = np.array(buf[:, complete * size :])
            return np.asarray(out[:, (positions >= held) & (positions < total)])
        self._pending = np.array(buf[:, complete * size :])
        return out[:, held:total]
