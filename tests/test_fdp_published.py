"""FDP's ``published`` preset against the authors' code (CYF-cuber/FDP): the parameter count of
each submodule, the shape of every stage's output for the published input (8 grey frames of
64 x 64), the layout of the per-frame features, and the dynamic-image target against a
brute-force computation of Bilen's approximate rank pooling on running means."""

import cv2
import numpy as np
import pytest
import torch
from mesti.train.inputs import FDPConfig
from mesti.train.models import fdp

# Counted from the published code built with its own constructor arguments, 5 classes.
PUBLISHED = {"frame_encoder": 54_952_448, "classifier": 905_293, "decoder": 29_446_465}
PUBLISHED_TOTAL = 85_304_206


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def published() -> fdp.FDP:
    torch.manual_seed(0)
    return fdp.build("fdp", 5, "published").eval()


def test_published_parameter_counts(published) -> None:
    for name, expected in PUBLISHED.items():
        got = count(getattr(published, name))
        assert abs(got - expected) <= 0.01 * expected, (name, got, expected)
    assert abs(count(published) - PUBLISHED_TOTAL) <= 0.01 * PUBLISHED_TOTAL
    assert FDPConfig().preset == "published" and FDPConfig().size == 64


def test_published_stage_shapes(published) -> None:
    seen: dict[str, tuple] = {}

    def keep(name):
        return lambda module, args, out: seen.__setitem__(name, tuple(out.shape))

    encoder, decoder = published.frame_encoder, published.decoder
    hooks = [encoder.stem.register_forward_hook(keep("stem")),
             encoder.register_forward_hook(keep("encoder")),
             published.classifier.rank_pool.register_forward_hook(keep("dynamic")),
             published.classifier.rank_pool.register_forward_pre_hook(
                 lambda module, args: seen.__setitem__("volume", tuple(args[0].shape))),
             published.classifier.fc1.register_forward_pre_hook(
                 lambda module, args: seen.__setitem__("pooled", tuple(args[0].shape)))]
    hooks += [s.register_forward_hook(keep(f"stage{i}")) for i, s in enumerate(encoder.stages)]
    hooks += [s.register_forward_hook(keep(f"down{i}")) for i, s in enumerate(decoder.down)]
    hooks += [s.register_forward_hook(keep(f"up{i}")) for i, s in enumerate(decoder.up)]
    with torch.no_grad():
        out = published(torch.randn(1, 8, 64, 64))
    for hook in hooks:
        hook.remove()
    frames = 8  # batch 1 x 8 frames through the encoder
    assert seen["stem"] == (frames, 64, 16, 16)
    assert [seen[f"stage{i}"] for i in range(4)] == [
        (frames, 96, 16, 16), (frames, 192, 8, 8), (frames, 384, 4, 4), (frames, 768, 2, 2)]
    assert seen["encoder"] == (frames, 4096)
    assert seen["volume"] == (1, 1, 64, 64, 8)
    assert seen["dynamic"] == (1, 8, 64, 64, 1)              # the dynamic representation
    assert seen["pooled"] == (1, 3528)                       # 8 x 21 x 21 after max-pool 3
    # decoder stages before their pooling, then the way back after unpooling
    assert [seen[f"down{i}"] for i in range(5)] == [
        (1, 64, 64, 64), (1, 128, 32, 32), (1, 256, 16, 16), (1, 512, 8, 8), (1, 512, 4, 4)]
    assert [seen[f"up{i}"] for i in range(5)] == [
        (1, 512, 4, 4), (1, 256, 8, 8), (1, 128, 16, 16), (1, 64, 32, 32), (1, 64, 64, 64)]
    assert tuple(out["logits"].shape) == (1, 5)
    assert tuple(out["reconstruction"].shape) == (1, 1, 64, 64)
    assert 0 <= float(out["reconstruction"].min()) <= float(out["reconstruction"].max()) <= 1


def test_global_blocks_are_optional_and_sized_as_the_published_constructor_lists_them() -> None:
    sizes = {k: v for k, v in fdp.PRESETS["published"].items()
             if k in ("stem", "depths", "widths", "drop_path", "global_widths", "reductions",
                      "head_dim")}
    with torch.device("meta"):  # sizes only, no memory or initialisation
        encoder = fdp.FrameEncoder(4096, global_blocks=True, **sizes)
    # the published layer lists with their global blocks built: 65,899,584 in the encoder
    assert count(encoder) == 65_899_584
    assert sum(isinstance(m, fdp.GlobalBlock) for m in encoder.modules()) == 4
    small = fdp.build("fdp", 5, "small", size=32, global_blocks=True).eval()
    with torch.no_grad():  # attention over 8x8, 4x4, 2x2, 1x1 tokens, keys pooled 64, 16, 4, 1
        assert tuple(small(torch.randn(1, 8, 32, 32))["logits"].shape) == (1, 5)


@pytest.mark.parametrize("volume", ["flat", "frames"])
def test_the_feature_volume_layout(volume: str) -> None:
    model = fdp.build("fdp", 3, "small", size=16, volume=volume)
    seen = {}
    model.frame_encoder.forward = lambda x: torch.arange(len(x), dtype=torch.float32)[
        :, None].expand(len(x), 256) % 8                     # each frame's features = t
    model.classifier.rank_pool.register_forward_pre_hook(
        lambda module, args: seen.__setitem__("volume", args[0]))
    model(torch.zeros(2, 8, 16, 16))
    v = seen["volume"][:, 0]                                  # (B, S, S, T)
    t = torch.arange(8, dtype=torch.float32)
    if volume == "flat":        # the published reshape: frame t fills rows 2t, 2t + 1 (S/T = 2)
        torch.testing.assert_close(v, t.repeat_interleave(2)[None, :, None, None].expand_as(v))
    else:                       # frame t at time index t
        torch.testing.assert_close(v, t[None, None, None, :].expand_as(v))


def brute_force_target(frames: np.ndarray) -> np.ndarray:
    """Running means psi_t = mean(x_1..x_t); the dynamic image sums psi_j - psi_i over every
    pair i < j (Bilen's pair counts); then OpenCV's min-max to 0..255, uint8, / 255, as the
    published data.py and train.py do."""
    out = []
    for clip in frames.astype(np.float64):
        means = [clip[:t + 1].mean(axis=0) for t in range(len(clip))]
        image = sum(means[j] - means[i] for j in range(len(clip)) for i in range(j))
        scaled = cv2.normalize(image, None, 0, 255, norm_type=cv2.NORM_MINMAX)
        out.append(scaled.astype(np.uint8) / 255.0)
    return np.stack(out)[:, None]


def test_target_equals_the_brute_force_rank_pooling_of_running_means() -> None:
    rng = np.random.default_rng(0)  # continuous values: no pixel sits on a uint8 boundary
    frames = (rng.random((4, 8, 12, 12)) * 255).astype(np.float32)
    got = fdp.dynamic_image_target(torch.from_numpy(frames)).numpy()
    expected = brute_force_target(frames)
    np.testing.assert_allclose(got, expected, atol=1e-7)
    # the raw-frame weights 2t - T - 1 (the earlier target) give another image
    raw = np.einsum("t,bthw->bhw", 2 * np.arange(1, 9) - 9.0, frames)[:, None]
    lo, hi = raw.min(axis=(2, 3), keepdims=True), raw.max(axis=(2, 3), keepdims=True)
    assert np.abs(np.floor((raw - lo) / (hi - lo) * 255) / 255 - expected).max() > 0.1


def test_the_fdp_section_names_a_bad_preset_or_size() -> None:
    from mesti.params import ParamsError, from_mapping

    assert from_mapping(FDPConfig, {"preset": "small", "size": 32}, "p [fdp]").preset == "small"
    with pytest.raises(ParamsError, match=r"p \[fdp\]: preset must be one of"):
        from_mapping(FDPConfig, {"preset": "huge"}, "p [fdp]")
    with pytest.raises(ParamsError, match="size must be a positive multiple of 32"):
        from_mapping(FDPConfig, {"size": 48}, "p [fdp]")
