"""The train stage's settings (params.yaml section ``train``), in a module of their own so the
runner, the fold tasks and ``mesti predict`` all read them without importing one another."""

from __future__ import annotations

from dataclasses import dataclass, field

from mesti.params import one_of

from . import clip_lists, protocols
from .data import LABEL_MAPPINGS
from .inputs import MODELS
from .models.meganet import SWITCHES, VARIANTS


@dataclass(frozen=True)
class TrainConfig:
    """Knobs of the train stage (params.yaml section ``train``)."""

    protocol: str = "loso"            # loso | lodo | holdout (subject-dependent) | cross
    model: str = "meganet"            # meganet | fdp | mol (their knobs: sections fdp, mol)
    labels: int = 3                   # 3 or 5 classes
    modality: str = "mesti"           # any image of the store: mesti, dynamic_raw, apex_frame...
    variant: str = "meganet"          # a name of train.model.VARIANTS (the ablations)
    switches: dict = field(default_factory=dict)  # MEGANet switches set on top of the variant
    input_size: int = 112             # measured knee of CPU step time; see README
    epochs: int = 50
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 1e-4
    gamma: float = 2.0                # focal loss
    seed: int = 0
    seeds: tuple[int, ...] = ()       # several seeds in one run (mean and std); empty: seed
    clip_list: str = "none"           # none | megc2019 | casme2_3class_all (train/lists/)
    label_mapping: str = "none"       # 5 classes across datasets: none (refused) | union | shared
    augment: str = "online"           # online (a random draw per batch) | expand (offline, x10)
    deterministic: bool = True        # cuDNN and PyTorch deterministic kernels on CUDA
    save_weights: bool = True         # weights/fold_NNN.pt per fold, for mesti predict
    selection: str = "last"           # last | validation (carved from training subjects)
    validation_fraction: float = 0.15
    holdout_fraction: float = 0.1
    train_on: str = ""                # cross: training dataset
    test_on: str = ""                 # cross: test dataset
    device: str = "auto"              # auto (CUDA when present) | cpu | cuda
    channels_last: bool = True
    figure_clips: int = 4
    on_bad_clip: str = "skip"         # a listed clip that cannot be read: skip (and name) | stop
    holdout_split: str = "published"  # published (plain seeded 10 %) | stratified (per class)
    threads: int = 1                  # intra-op CPU threads, set explicitly; 0: torch's own

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "switches", dict(self.switches))
        checks = {
            one_of("protocol", protocols.SUBJECT_INDEPENDENT):
                self.protocol in protocols.SUBJECT_INDEPENDENT,
            one_of("model", MODELS): self.model in MODELS,
            one_of("labels", (3, 5)): self.labels in (3, 5),
            one_of("variant", VARIANTS): self.variant in VARIANTS,
            f"switches' names among {{{', '.join(SWITCHES)}}}":
                set(self.switches) <= set(SWITCHES),
            "seeds distinct integers":
                all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds)
                and len(set(self.seeds)) == len(self.seeds),
            one_of("clip_list", clip_lists.NAMES): self.clip_list in clip_lists.NAMES,
            one_of("label_mapping", LABEL_MAPPINGS): self.label_mapping in LABEL_MAPPINGS,
            one_of("augment", ("online", "expand")): self.augment in ("online", "expand"),
            one_of("selection", ("last", "validation")):
                self.selection in ("last", "validation"),
            one_of("device", ("auto", "cpu", "cuda")): self.device in ("auto", "cpu", "cuda"),
            one_of("on_bad_clip", ("skip", "stop")): self.on_bad_clip in ("skip", "stop"),
            one_of("holdout_split", protocols.HOLDOUT_SPLITS):
                self.holdout_split in protocols.HOLDOUT_SPLITS,
            "threads >= 0 (>= 1 when deterministic)": self.threads >= int(self.deterministic),
            "input_size >= 16": self.input_size >= 16,
            "epochs >= 1": self.epochs >= 1,
            "batch_size >= 1": self.batch_size >= 1,
            "lr > 0": self.lr > 0,
            "weight_decay >= 0": self.weight_decay >= 0,
            "gamma >= 0": self.gamma >= 0,
            "0 < validation_fraction < 1": 0 < self.validation_fraction < 1,
            "0 < holdout_fraction < 1": 0 < self.holdout_fraction < 1,
            "figure_clips >= 0": self.figure_clips >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid train settings: {', '.join(bad)} must hold")
