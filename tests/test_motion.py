"""Motion inputs against oracles: known flows, analytic strain, closed forms, mesh indices."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from mesti.pipeline.faces import landmarks68
from mesti.pipeline.motion import active, flow, magnify, sampling


def _face_texture(size: int = 96) -> np.ndarray:
    """A grey, textured face crop (the astronaut photo scikit-image ships)."""
    from skimage import data

    grey = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey[30:230, 150:350], (size, size), interpolation=cv2.INTER_AREA)


def _flow_of(matrix: np.ndarray, size: int) -> np.ndarray:
    """The flow a 2x3 warp induces: each pixel p moves to matrix @ p."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    moved_x = matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2]
    moved_y = matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2]
    return np.stack([moved_x - x, moved_y - y], axis=-1)


def _warped_pair(matrix: np.ndarray, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    first = _face_texture(size)
    second = cv2.warpAffine(first, matrix, (size, size), flags=cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_REFLECT)
    return first, second


INNER = (slice(16, -16), slice(16, -16))  # away from the borders


@pytest.mark.parametrize("matrix", [
    np.array([[1, 0, 1.5], [0, 1, -0.8]]),                       # translation
    cv2.getRotationMatrix2D((47.5, 47.5), 2.0, 1.0),              # rotation by 2 degrees
], ids=["translation", "rotation"])
def test_tvl1_recovers_rigid_motion_with_no_strain(matrix):
    first, second = _warped_pair(matrix)
    found = flow.tvl1_flow(first, second)
    truth = _flow_of(matrix, 96)
    error = np.abs(found - truth)[INNER]
    assert found.shape == (96, 96, 2) and found.dtype == np.float32
    assert np.median(error) < 0.1 and np.mean(error) < 0.2
    assert np.median(flow.strain(found)[INNER]) < 0.02   # rigid: no deformation


def test_tvl1_shear_gives_the_known_strain():
    k = 0.04                                                     # u = k (y - c), v = 0
    matrix = np.array([[1, k, -k * 47.5], [0, 1, 0]])
    first, second = _warped_pair(matrix)
    found = flow.tvl1_flow(first, second)
    assert np.median(np.abs(found - _flow_of(matrix, 96))[INNER]) < 0.1
    measured = np.median(flow.strain(found)[INNER])
    assert measured == pytest.approx(k / np.sqrt(2), rel=0.25)   # |e| = sqrt(1/2 k^2)


def test_tvl1_knobs_reach_opencv():
    first, second = _warped_pair(np.array([[1, 0, 1.0], [0, 1, 0.0]]), 64)
    default = flow.tvl1_flow(first, second)
    crude = flow.tvl1_flow(first, second, flow.TVL1Params(warps=1, nscales=1,
                                                          outer_iterations=1))
    assert not np.allclose(default, crude)
    with pytest.raises(ValueError, match="one shape"):
        flow.tvl1_flow(first, second[:-1])


def test_strain_matches_the_analytic_field():
    n, h = 200, 0.01
    y, x = np.mgrid[0:n, 0:n] * h
    u, v = np.sin(2 * x) * np.cos(y), x * y ** 2                 # in units of h
    u_x, u_y = 2 * np.cos(2 * x) * np.cos(y), -np.sin(2 * x) * np.sin(y)
    v_x, v_y = y ** 2, 2 * x * y
    truth = np.sqrt(u_x ** 2 + v_y ** 2 + 0.5 * (u_y + v_x) ** 2)
    found = flow.strain(np.stack([u, v], -1) / h)               # in pixels; strain has no unit
    np.testing.assert_allclose(found[1:-1, 1:-1], truth[1:-1, 1:-1], atol=3e-4)  # O(h^2)
    np.testing.assert_allclose(found, truth, atol=2e-2)         # one-sided at the border


def test_scalings_recover_the_field_and_fixed_keeps_zero():
    rng = np.random.default_rng(0)
    field = rng.normal(0, 0.7, (32, 32)).astype(np.float32)
    q, lo, hi = flow.to_uint8(field, "minmax")
    assert (lo, hi) == (field.min(), field.max()) and q.min() == 0 and q.max() == 255
    assert np.abs(flow.from_uint8(q, lo, hi) - field).max() <= (hi - lo) / 510 + 1e-6
    q, lo, hi = flow.to_uint8(field, "fixed", bound=2.0)
    assert (lo, hi) == (-2.0, 2.0)
    assert np.abs(flow.from_uint8(q, lo, hi) - np.clip(field, -2, 2)).max() <= 4 / 510 + 1e-6
    assert flow.to_uint8(np.zeros((4, 4)), "fixed", 2.0)[0][0, 0] == 128   # zero: mid-grey
    assert flow.to_uint8(np.full((4, 4), 3.0), "minmax")[0][0, 0] == 128   # flat: mid-grey
    q, lo, hi = flow.to_uint8(np.abs(field), "fixed", bound=1.0, signed=False)  # strain
    assert (lo, hi) == (0.0, 1.0)
    with pytest.raises(ValueError, match="scaling"):
        flow.to_uint8(field, "log")


def test_colour_wheel_directions():
    field = np.zeros((2, 3, 2), np.float32)
    field[0, 1] = (1, 0)     # right: red
    field[0, 2] = (0, 1)     # down: hue 90 degrees, yellow-green
    field[1, 0] = (-1, 0)    # left: cyan
    image = flow.colour_wheel(field)
    assert image.dtype == np.uint8 and image.shape == (2, 3, 3)
    assert tuple(image[0, 0]) == (255, 255, 255)                # no flow: white
    assert tuple(image[0, 1]) == (255, 0, 0)
    assert image[1, 0, 0] == 0 and image[1, 0, 1] == 255 == image[1, 0, 2]
    assert image[0, 2, 1] == 255 and image[0, 2, 2] == 0


def test_active_image_is_the_sum_of_later_minus_earlier_differences():
    grey = np.random.default_rng(1).integers(0, 256, (7, 5, 4), dtype=np.uint8)
    pairs = sum(grey[j].astype(np.float64) - grey[k] for j in range(7) for k in range(j))
    np.testing.assert_allclose(active.active_image(grey), pairs, rtol=1e-6)
    assert not active.active_image(np.repeat(grey[:1], 5, 0)).any()   # still clip: zero


def _sinusoid_gain(omega: float, params: magnify.MagnifyParams) -> float:
    """Measured steady-state amplitude ratio of a grating whose contrast oscillates."""
    n, size = 400, 64
    x = np.arange(size)
    grating = np.sin(2 * np.pi * x / 8)[None, :].repeat(size, 0)   # mid spatial frequency
    contrast = np.sin(omega * np.arange(n))
    frames = 128 + 10 * contrast[:, None, None] * grating
    out = magnify.magnify(frames, params) - 128
    tail = slice(n // 2, n)                                      # past the filter's start-up
    basis = np.stack([np.sin(omega * np.arange(n)), np.cos(omega * np.arange(n))])[:, tail]
    inner = out[tail, 16:48, 16:48]
    response = np.tensordot(inner, grating[16:48, 16:48], axes=([1, 2], [0, 1]))
    response /= 10 * (grating[16:48, 16:48] ** 2).sum()
    coeffs = np.linalg.lstsq(basis.T, response, rcond=None)[0]
    return float(np.hypot(*coeffs))


@pytest.mark.parametrize("cycles", [0.002, 0.03, 0.3])   # cycles per frame
def test_magnification_gain_is_the_band_pass_closed_form(cycles):
    """A grating whose contrast oscillates is amplified by |1 + alpha H(omega)|, with H the
    difference of the two IIR low-passes: about 1 + alpha in the band (peak near 0.03
    cycles/frame for r1 0.4, r2 0.05), falling towards 1 away from it."""
    params = magnify.MagnifyParams(alpha=5.0, lambda_c=0.1, skip_finest=False)
    omega = 2 * np.pi * cycles
    expected = abs(1 + 5.0 * magnify.band_response(omega))
    assert _sinusoid_gain(omega, params) == pytest.approx(expected, rel=0.05)


def test_magnification_band_and_stillness():
    gains = [abs(1 + 5 * magnify.band_response(2 * np.pi * f)) for f in (0.0, 0.03, 0.5)]
    assert gains[0] == pytest.approx(1.0) and gains[1] > 0.8 * 6 and gains[2] < 0.4 * 6
    still = np.full((10, 32, 32), 90.0)
    params = magnify.MagnifyParams(alpha=5.0, lambda_c=0.1, skip_finest=False)
    np.testing.assert_allclose(magnify.magnify(still, params), still, atol=1e-3)


def test_magnification_cut_off_lowers_fine_bands():
    alphas = magnify.level_alphas(224, 224, magnify.MagnifyParams(alpha=20, lambda_c=80))
    assert alphas[0] == 0                                       # finest band left out
    assert alphas[1] < alphas[2] <= 20 and alphas[-1] == 20     # coarser bands: full alpha


def test_68_points_sit_in_the_mesh_regions():
    from mediapipe.python.solutions import face_mesh_connections as regions

    def vertices(*connections):
        return {i for c in connections for edge in c for i in edge}

    assert len(set(landmarks68.MESH_TO_68)) == 68
    assert set(landmarks68.JAW) <= vertices(regions.FACEMESH_FACE_OVAL)
    # MediaPipe names sides from the subject: its "right eye" is on the image left
    assert set(landmarks68.EYE_LEFT) <= vertices(regions.FACEMESH_RIGHT_EYE)
    assert set(landmarks68.EYE_RIGHT) <= vertices(regions.FACEMESH_LEFT_EYE)
    assert set(landmarks68.BROW_LEFT) <= vertices(regions.FACEMESH_RIGHT_EYEBROW)
    assert set(landmarks68.BROW_RIGHT) <= vertices(regions.FACEMESH_LEFT_EYEBROW)
    assert set(landmarks68.LIPS_OUTER + landmarks68.LIPS_INNER) <= vertices(
        regions.FACEMESH_LIPS)
    assert set(landmarks68.NOSE_BRIDGE + landmarks68.NOSE_BASE) <= vertices(
        regions.FACEMESH_NOSE)
    # the corners the faces stage aligns on are dlib's eye corners 36, 39, 42, 45
    assert [landmarks68.MESH_TO_68[i] for i in (36, 39, 42, 45)] == [33, 133, 362, 263]
    assert landmarks68.MESH_TO_68[8] == 152 and landmarks68.MESH_TO_68[30] == 4


# dlib's left-right mirror of the 68 points (as face-alignment toolkits flip them)
MIRROR_68 = ([16 - i for i in range(17)] + list(range(26, 16, -1)) + [27, 28, 29, 30]
             + [35, 34, 33, 32, 31] + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
             + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65])


def test_68_points_follow_the_dlib_layout_on_a_real_face():
    from mesti.pipeline.sample.generator import _source_photo, source_landmarks

    photo = _source_photo()
    points = landmarks68.to_68(source_landmarks(photo))
    mirrored = landmarks68.to_68(source_landmarks(photo[:, ::-1].copy()))
    mirrored[:, 0] = photo.shape[1] - 1 - mirrored[:, 0]
    # the mirror image's point i is the original's mirror point: every pair is mapped
    scale = landmarks68.pupil_distance(points)
    assert np.median(np.linalg.norm(mirrored[MIRROR_68] - points, axis=1)) < 0.08 * scale
    assert np.linalg.norm(mirrored[MIRROR_68] - points, axis=1).max() < 0.25 * scale
    x, y = points[:, 0], points[:, 1]
    assert np.argmax(y[:17]) == 8                               # chin lowest on the jaw
    assert (np.diff(x[17:22]) > 0).all() and (np.diff(x[22:27]) > 0).all()
    assert y[17:27].mean() < y[36:48].mean() < y[30] < y[48:68].mean()
    assert x[36] < x[39] < x[42] < x[45] and x[48] < x[51] < x[54]


@pytest.mark.parametrize("n_frames", [8, 9, 15, 16, 17, 31, 60, 61])
def test_uniform_sampling_is_the_peers_rule(n_frames):
    got = sampling.positions(n_frames, "uniform", 8)
    stride = n_frames // 8
    assert got.shape == (stride, 8)
    for phase in range(stride):                     # MOL: every phase; FDP: phase 0
        assert got[phase].tolist() == [phase + i * stride for i in range(8)]
    assert got.max() <= n_frames - 1


def test_other_samplings():
    assert sampling.positions(5, "uniform", 8).tolist() == [[0, 0, 1, 1, 2, 3, 3, 4]]
    assert sampling.positions(5, "all").tolist() == [[0, 1, 2, 3, 4]]
    assert sampling.positions(11, "interpolate", 6).tolist() == [[0, 2, 4, 6, 8, 10]]
    assert sampling.positions(4, "interpolate", 3).tolist() == [[0, 1.5, 3]]
    with pytest.raises(ValueError, match="sampling"):
        sampling.positions(4, "random")
    frames = np.arange(4, dtype=np.uint8)[:, None, None] * np.uint8(10)
    assert sampling.blend(frames, np.array([0, 1.5, 3])).ravel().tolist() == [0, 15, 30]
