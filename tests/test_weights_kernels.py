"""Closed-form rank-pooling weights against brute force over pairs; the kernel against numpy."""

from itertools import combinations

import numpy as np
import pytest
from mesti.pipeline.pooling import apex, weights
from mesti.pipeline.pooling.kernels import flat_tolerance, to_uint8, weighted_sum


def brute(n: int, higher) -> np.ndarray:
    """alpha_t from the pairs: +1 where t ranks higher, -1 where lower.

    ``higher(i, j)`` returns the frame ranked higher of the pair, or None if not compared.
    """
    alpha = np.zeros(n)
    for i, j in combinations(range(1, n + 1), 2):
        top = higher(i, j)
        if top is None:
            continue
        low = j if top == i else i
        alpha[top - 1] += 1
        alpha[low - 1] -= 1
    return alpha


def mesti_relation(a):
    def higher(i, j):  # i < j
        if j <= a:
            return j
        if i >= a:
            return i
        return None
    return higher


def proximity_relation(a):
    def higher(i, j):
        di, dj = abs(i - a), abs(j - a)
        return None if di == dj else (i if di < dj else j)
    return higher


CASES = [(n, a) for n in (1, 2, 3, 4, 7, 12, 31, 60) for a in sorted({1, 2, n // 2, n - 1, n})
         if 1 <= a <= n]


@pytest.mark.parametrize("n, a", CASES)
def test_closed_forms_equal_brute_force(n: int, a: int) -> None:
    np.testing.assert_array_equal(weights.mesti(n, a), brute(n, mesti_relation(a)))
    np.testing.assert_array_equal(weights.mesti_proximity(n, a), brute(n, proximity_relation(a)))
    np.testing.assert_array_equal(weights.dynamic_raw(n), brute(n, lambda i, j: j))
    for w in (weights.mesti(n, a), weights.mesti_proximity(n, a), weights.dynamic_tvm(n)):
        assert abs(w.sum()) < 1e-9


@pytest.mark.parametrize("n", [1, 2, 5, 16, 60])
def test_time_varying_mean_equals_raw_pooling_of_running_means(n: int) -> None:
    rng = np.random.default_rng(n)
    frames = rng.normal(size=(n, 4))
    running_means = np.cumsum(frames, axis=0) / np.arange(1, n + 1)[:, None]
    pooled = brute(n, lambda i, j: j) @ running_means
    np.testing.assert_allclose(weights.dynamic_tvm(n) @ frames, pooled, atol=1e-9)


@pytest.mark.parametrize("n, a", [c for c in CASES if c[0] >= 3])
def test_mesti_weights_are_unimodal_at_apex(n: int, a: int) -> None:
    for w in (weights.mesti(n, a), weights.mesti_proximity(n, a)):
        assert np.argmax(w) == a - 1 and w[a - 1] == w.max()
        assert np.all(np.diff(w[:a]) >= 0) and np.all(np.diff(w[a - 1:]) <= 0)
    np.testing.assert_array_equal(weights.mesti(n, n), weights.dynamic_raw(n))
    np.testing.assert_array_equal(weights.mesti(n, 1), weights.dynamic_raw(n)[::-1])


def test_bad_apex_and_variant() -> None:
    with pytest.raises(ValueError, match="apex 0 outside"):
        weights.mesti(5, 0)
    with pytest.raises(ValueError, match="needs an apex"):
        weights.weights("mesti", 5)
    with pytest.raises(ValueError, match="unknown variant"):
        weights.weights("mean", 5, 2)


@pytest.mark.parametrize("shape", [(2, 3, 5, 3), (37, 16, 24, 3), (60, 64, 64, 3), (8, 9, 7, 1)])
def test_kernel_matches_float64_reference(shape) -> None:
    rng = np.random.default_rng(sum(shape))
    frames = rng.integers(0, 256, size=shape, dtype=np.uint8)
    w = weights.mesti(shape[0], max(1, shape[0] // 3))
    expected = np.tensordot(w, frames.astype(np.float64), axes=1)
    got = weighted_sum(frames, w)
    assert got.dtype == np.float32 and got.shape == shape[1:]
    scale = np.abs(w).sum() * 255
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=scale * 2e-7)


def test_still_clip_gives_flat_mid_grey() -> None:
    frames = np.repeat(np.random.default_rng(0).integers(0, 256, (1, 20, 20, 3), np.uint8), 9, 0)
    for variant in weights.VARIANTS:
        w = weights.weights(variant, 9, 4)
        pooled = weighted_sum(frames, w)
        assert np.abs(pooled).max() < flat_tolerance(w) / 2, variant
        image, _, _ = to_uint8(pooled, flat_tolerance(w))
        assert np.all(image == 128), variant
    moving = frames.copy()
    moving[4, 10, 10, 0] += 1  # one grey level at the apex is not flat
    w = weights.mesti(9, 5)
    image, _, _ = to_uint8(weighted_sum(moving, w), flat_tolerance(w))
    assert image.max() == 255 and image.min() == 0


def test_uint8_view_recovers_float_image() -> None:
    image = np.random.default_rng(1).normal(0, 50, (12, 12, 3)).astype(np.float32)
    u, lo, hi = to_uint8(image)
    assert u.min() == 0 and u.max() == 255
    np.testing.assert_allclose(lo + (hi - lo) * u / 255.0, image, atol=(hi - lo) / 510 + 1e-4)


def test_apex_policies() -> None:
    frames = np.zeros((11, 8, 8, 3), np.uint8)
    profile = np.array([0, 1, 3, 6, 9, 12, 30, 10, 5, 2, 0])  # one noisy spike at 6
    profile[3:6] += 8
    frames += profile[:, None, None, None].astype(np.uint8)
    assert apex.estimate(frames, smoothing=1) == 6
    estimated = apex.estimate(frames, smoothing=3)
    assert apex.choose("annotation", 11, 4, estimated, "middle") == (4, "annotation")
    assert apex.choose("annotation", 11, None, estimated, "middle") == (5, "middle")
    assert apex.choose("middle", 11, 2, estimated, "middle") == (5, "middle")
    assert apex.choose("estimate", 11, None, estimated, "middle") == (estimated, "estimate")
    assert apex.choose("annotation", 11, None, estimated, "estimate") == (estimated, "estimate")
