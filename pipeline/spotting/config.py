"""The spotting knobs: params.yaml section ``spotting``, one dataclass with four parts.

``sample`` (the synthetic long videos), ``series`` (the long-video store), ``spotter``
(peak detection) and ``learned`` (the LOSO spotter). Each part is a mapping in the
section; an unknown key anywhere is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

REGIONS = ("brow_left", "brow_right", "eye_left", "eye_right", "nose", "mouth_left",
           "mouth_right")


@dataclass(frozen=True)
class LongSampleConfig:
    """The synthetic long videos (pipeline/spotting/synthetic.py)."""

    seed: int = 11
    videos: int = 2
    seconds: float = 20.0
    fps: float = 30.0
    width: int = 320                 # frames are written at this size (the face photo's
    height: int = 240                #   640x480 placement, scaled)
    micro_seconds: tuple = (0.2, 0.5)
    macro_seconds: tuple = (0.8, 3.0)
    micro_amplitude_px: tuple = (1.0, 2.0)   # peak displacement at the apex, written pixels
    macro_amplitude_px: tuple = (3.0, 5.0)
    events_per_video: int = 6        # alternating micro and macro
    blinks_per_minute: float = 12.0
    head_turns: int = 1              # slow shifts and rolls of the whole head per video
    head_shift_px: float = 6.0
    head_roll_deg: float = 2.0
    lighting_drift: float = 0.05     # relative gain, a slow sine over the video
    noise_sigma: float = 2.0
    jpeg_quality: int = 92

    def __post_init__(self) -> None:
        for name in ("micro_seconds", "macro_seconds", "micro_amplitude_px",
                     "macro_amplitude_px"):
            value = tuple(getattr(self, name))
            if len(value) != 2 or not 0 < value[0] <= value[1]:
                raise ValueError(f"{name} must be [low, high] with 0 < low <= high")
            object.__setattr__(self, name, value)
        if self.videos < 1 or self.seconds <= 0 or self.fps <= 0 or self.events_per_video < 0:
            raise ValueError("videos >= 1, seconds > 0, fps > 0 and events_per_video >= 0 "
                             "must hold")


@dataclass(frozen=True)
class SeriesConfig:
    """The long-video store (pipeline/spotting/series.py)."""

    k: int = 0                  # frames between the two frames of each flow; 0: half the
                                #   average micro-expression length at the video's fps
    micro_seconds: float = 0.35  # the average micro-expression length that k = 0 uses
    size: int = 128             # side of the aligned face crop (faces.alignment's geometry)
    flow_size: int = 64         # grey crop side the flow runs on
    stabilise: bool = True      # per-frame re-fit of the rigid landmarks (faces.stabilised)
    track_every: int = 1        # frames between face-mesh checks (face lost / found)
    chunk_frames: int = 256     # frames per zarr chunk and per write: memory is bounded by it
    tvl1: dict = field(default_factory=lambda: {"nscales": 2, "warps": 1,
                                                "inner_iterations": 10, "outer_iterations": 1})

    def __post_init__(self) -> None:
        from ..motion.flow import TVL1Params

        try:
            TVL1Params(**self.tvl1)
        except TypeError as error:
            raise ValueError(f"tvl1: {error}") from error
        if self.k < 0 or self.size < 32 or self.flow_size < 16 or self.chunk_frames < 1 \
                or self.track_every < 1:
            raise ValueError("k >= 0, size >= 32, flow_size >= 16, chunk_frames >= 1 and "
                             "track_every >= 1 must hold")


@dataclass(frozen=True)
class SpotterConfig:
    """Peak detection on the region series (pipeline/spotting/peaks.py)."""

    regions: tuple = ("brow_left", "brow_right", "mouth_left", "mouth_right")
    micro_z: float = 3.0        # threshold = median + z * 1.4826 * MAD of each region's series
    macro_z: float = 5.0
    macro_steps: int = 4        # the macro scale sums this many k-frame flows
    smooth: int = 5             # moving-average width (frames) before thresholding
    max_micro_seconds: float = 0.5  # MEGC's boundary: longer spotted intervals are macro
    min_seconds: float = 0.15   # shorter runs are dropped (blinks, noise peaks)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regions", tuple(self.regions))
        unknown = [r for r in self.regions if r not in REGIONS]
        if unknown or not self.regions:
            raise ValueError(f"regions must be among {REGIONS}, got {list(self.regions)}")
        if self.micro_z <= 0 or self.macro_z <= 0 or self.macro_steps < 1 or self.smooth < 1:
            raise ValueError("micro_z > 0, macro_z > 0, macro_steps >= 1 and smooth >= 1 "
                             "must hold")


@dataclass(frozen=True)
class LearnedConfig:
    """The learned LOSO spotter (pipeline/spotting/learned.py)."""

    window: int = 8             # frames t + j * stride, j in -window..window
    stride: int = 3
    macro_steps: int = 4
    epochs: int = 300
    lr: float = 0.5
    l2: float = 0.001
    smooth: int = 9             # moving average of the class probabilities, frames
    merge: int = 12             # runs of one class this close are joined, frames
    min_seconds: float = 0.15

    def __post_init__(self) -> None:
        if self.window < 0 or self.stride < 1 or self.macro_steps < 1 or self.epochs < 1 \
                or self.lr <= 0 or self.l2 < 0 or self.smooth < 1 or self.merge < 0:
            raise ValueError("window >= 0, stride >= 1, macro_steps >= 1, epochs >= 1, "
                             "lr > 0, l2 >= 0, smooth >= 1 and merge >= 0 must hold")


@dataclass(frozen=True)
class SpottingConfig:
    """params.yaml section ``spotting``: ``sample``, ``series``, ``spotter`` and ``learned``."""

    sample: LongSampleConfig = field(default_factory=LongSampleConfig)
    series: SeriesConfig = field(default_factory=SeriesConfig)
    spotter: SpotterConfig = field(default_factory=SpotterConfig)
    learned: LearnedConfig = field(default_factory=LearnedConfig)

    def __post_init__(self) -> None:
        for part in fields(self):
            value = getattr(self, part.name)
            if isinstance(value, dict):
                cls = part.default_factory  # type: ignore[misc]
                known = {f.name for f in fields(cls)}
                unknown = sorted(set(value) - known)
                if unknown:
                    raise ValueError(f"{part.name}: unknown keys {unknown}; known keys "
                                     f"{sorted(known)}")
                object.__setattr__(self, part.name, cls(**value))
