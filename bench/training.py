"""Training throughput of the three models at the sample's settings.

    python -m bench.training [--params params.yaml] [--steps 5] [--repeats 3] [--pinned]
        [--threads N] [--published-steps 0]

Prints training images (MEGANet) or clips (FDP, MOL) per second on the CPU, and on CUDA
when a device is present: one warm-up step, then ``--repeats`` runs of ``--steps`` steps of
each model's real training step (forward, its full loss, backward, Adam) on random inputs of
the shapes the sample's params give (sections ``train``, ``sequences``, ``fdp``, ``mol``);
the median run. ``--pinned`` measures under the deterministic mode's CPU pinning (oneDNN
off, ATen at AVX2, MKL's COMPATIBLE branch, ``train.threads`` threads), so two calls give
its cost. A last row is FDP's ``published`` preset at the published settings (8 x 64 x
64 clips, batch 36): its FLOPs, and with ``--published-steps N`` one warm-up step and N timed
steps (off by default: a step takes about 110 s on two busy CPU cores). Each row also gives
the floating-point operations of one training step per sample (forward and backward,
counted by PyTorch's FlopCounterMode on the meta device, so nothing runs). The benchmark's
MEGANet rows (``bench.run``, item 7) use the same function.

MOL gets a second row at its published preset and input (8 x 128 x 128 crops of 144-px
frames, the published batch of 32). On CUDA it is timed. On a CPU a step takes minutes, so
the rate is estimated: the step's floating-point operations (counted by PyTorch's
FlopCounterMode on the meta device; 89 GFLOP per clip) over the CPU's rate on a dense
1024 x 1024 float32 matrix product: an upper bound on the rate, far from what a CPU
reaches (on a shared 2-core CPU the matmul rate was 22 GFLOP/s, 8 s for a step of 2 clips;
the one timed step of 2 clips took 163 s). An epoch takes (phase clips x 5 random crops)
/ rate seconds. Measured for reference on one H200 (fp32, torch 2.11, with the flow
encoder still run twice per frame as published; it now runs once): 52 clips/s at batch 32
(7.5 GiB), 54 at 128, so a fold's 1000 steps of 32 take about 10 minutes; the small preset
at 32 px and batch 8 ran at 300 clips/s there.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np


def training_throughput(input_size: int, batch_size: int = 16, steps: int = 5, *,
                        model: str = "meganet", model_config=None, device: str = "cpu",
                        repeats: int = 1) -> float:
    """Training samples per second of one model's real training step (forward, the model's
    full loss, backward, Adam), the median over ``repeats`` runs of ``steps`` steps after one
    warm-up step.

    A sample is an image for MEGANet (``input_size`` its side) and a clip of frames for FDP
    and MOL (``input_size`` the side of the sequences store's frames, which the model's
    adapter resizes or crops with ``model_config``, sections ``fdp`` / ``mol``). The batch
    is made once by the model's own adapter (train/inputs.py) from random inputs of the
    right shapes: the speed of a step does not depend on the pixels.
    """
    import torch
    from mesti.train.run import TrainConfig

    torch.manual_seed(0)
    inputs = _random_inputs(model, input_size, batch_size, model_config)
    settings = inputs.settings(TrainConfig())
    target = torch.device(device)
    network = inputs.build(TrainConfig().variant, 3).to(target)
    generator = torch.Generator().manual_seed(0)
    batch = {k: v.to(target) for k, v in
             inputs.batch(inputs.samples(train=True)[:batch_size], True, generator).items()}
    if settings["channels_last"]:
        network.to(memory_format=torch.channels_last)
        batch["input"] = batch["input"].contiguous(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(network.parameters(), lr=1e-4)
    network.train()

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        inputs.loss(network(batch["input"]), batch, settings["gamma"]).backward()
        optimiser.step()

    def run() -> float:
        started = time.perf_counter()
        for _ in range(steps):
            step()
        if target.type == "cuda":
            torch.cuda.synchronize(target)
        return steps * batch_size / (time.perf_counter() - started)

    step()
    if target.type == "cuda":
        torch.cuda.synchronize(target)
    return statistics.median(run() for _ in range(repeats))


def training_flops(input_size: int, batch_size: int = 16, *, model: str = "meganet",
                   model_config=None) -> float | None:
    """Floating-point operations per sample of one training step's forward and backward
    pass (the optimiser's update not counted), counted on two samples on PyTorch's meta
    device (shapes only, nothing computed); None where an operation has no meta kernel."""
    import torch
    from mesti.train.run import TrainConfig
    from torch.utils.flop_counter import FlopCounterMode

    inputs = _random_inputs(model, input_size, 2, model_config)
    settings = inputs.settings(TrainConfig())
    network = inputs.build(TrainConfig().variant, 3).to("meta").train()
    batch = {k: v.to("meta") for k, v in
             inputs.batch(inputs.samples(train=True)[:2], True,
                          torch.Generator().manual_seed(0)).items()}
    try:
        with FlopCounterMode(display=False) as counter:
            inputs.loss(network(batch["input"]), batch, settings["gamma"]).backward()
    except (NotImplementedError, RuntimeError):
        return None
    return counter.get_total_flops() / 2


def _random_inputs(model: str, side: int, count: int, config):
    """A model's training adapter over ``count`` random 3-class samples: MEGANet images
    (3, side, side); FDP and MOL one 8-frame clip per sample from side x side frames (MOL
    with its flow, landmark and pupil-distance targets)."""
    import torch
    from mesti.train.inputs import MODEL_CONFIGS, FDPInputs, ImageInputs, MOLInputs

    rng = np.random.default_rng(0)
    labels = torch.from_numpy(rng.integers(0, 3, count))
    if model == "meganet":
        return ImageInputs(torch.rand(count, 3, side, side) * 2 - 1, labels)
    config = config or MODEL_CONFIGS[model]()
    frames, length = 8, config.size if model == "fdp" else side
    clips = rng.integers(0, 256, (count, frames, length, length), dtype=np.uint8)
    if model == "fdp":
        return FDPInputs(torch.from_numpy(clips), labels, config)
    return MOLInputs([{"frames": c[None],
                       "flow": rng.normal(0, 0.5, (1, frames - 1, side, side, 2)).astype(
                           np.float16),
                       "landmarks": rng.uniform(0, side, (1, frames, 68, 2)).astype(np.float32),
                       "pupil_distance": np.full((1, frames), side / 3, np.float32)}
                      for c in clips], labels, config)


def sample_settings(params: Path) -> dict[str, dict]:
    """Per model the keyword arguments of :func:`training_throughput` that the params file
    gives: MEGANet's input size and batch; FDP's and MOL's sections over the sequences
    store's frame side."""
    from mesti.pipeline.runner.sequences import SequencesConfig
    from mesti.train.inputs import FDPConfig, MOLConfig
    from mesti.train.run import TrainConfig

    from mesti.params import load_section

    train = load_section(TrainConfig, params, "train")
    side = load_section(SequencesConfig, params, "sequences").size
    fdp = load_section(FDPConfig, params, "fdp")
    mol = load_section(MOLConfig, params, "mol")
    return {
        "meganet": {"input_size": train.input_size, "batch_size": train.batch_size},
        "fdp": {"input_size": side, "batch_size": fdp.batch_size, "model_config": fdp},
        "mol": {"input_size": side, "batch_size": mol.batch_size, "model_config": mol},
    }


def published_fdp_settings() -> dict:
    """FDP's ``published`` preset at the published training settings (the defaults of the
    ``fdp`` section: 64 x 64 frames, batch 36)."""
    from mesti.train.inputs import FDPConfig

    config = FDPConfig()
    return {"input_size": config.size, "batch_size": config.batch_size, "model_config": config}


def _label(model: str, settings: dict) -> str:
    preset = getattr(settings.get("model_config"), "preset", None)
    return f"{model} (preset {preset})" if preset else model


def _shape(model: str, settings: dict) -> str:
    config = settings.get("model_config")
    if model == "meganet":
        return f"images 3x{settings['input_size']}x{settings['input_size']}"
    if model == "fdp":
        return f"clips 8x{config.size}x{config.size}"
    return (f"clips 8x{config.size}x{config.size} (crop {config.crop} of "
            f"{settings['input_size']}), preset {config.preset}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pinned", action="store_true",
                        help="under the deterministic mode's CPU pinning (train/determinism.py)")
    parser.add_argument("--threads", type=int, default=0,
                        help="intra-op threads (0: torch's own; --pinned: train.threads)")
    parser.add_argument("--published-steps", type=int, default=0,
                        help="timed steps of the published FDP row (default 0: FLOPs only)")
    args = parser.parse_args()
    if args.pinned:  # before torch starts: some settings are read once per process
        from mesti.train.determinism import pin_process

        pin_process()
    import torch

    if args.pinned:
        from mesti.train.determinism import cpu_pinning
        from mesti.train.run import TrainConfig

        from mesti.params import load_section

        cpu_pinning(args.threads or load_section(TrainConfig, args.params, "train").threads)
    elif args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"training throughput at {args.params}'s settings: median of {args.repeats} runs of "
          f"{args.steps} steps after a warm-up step; torch threads {torch.get_num_threads()}; "
          f"{'pinned' if args.pinned else 'unpinned'} CPU kernels")
    print("| model | samples | batch | GFLOP per sample and step | "
          + " | ".join(f"{d} per s" for d in devices) + " |")
    print("|---|---|---|---|" + "---|" * len(devices))

    def row(model: str, settings: dict, rates: list[str]) -> None:
        flops = training_flops(settings["input_size"], settings["batch_size"], model=model,
                               model_config=settings.get("model_config"))
        gflop = "-" if flops is None else f"{flops / 1e9:.3g}"
        print(f"| {_label(model, settings)} | {_shape(model, settings)} | "
              f"{settings['batch_size']} | {gflop} | " + " | ".join(rates) + " |", flush=True)

    for model, settings in sample_settings(args.params).items():
        rates = [training_throughput(**settings, steps=args.steps, model=model, device=d,
                                     repeats=args.repeats) for d in devices]
        row(model, settings, [f"{r:.1f}" for r in rates])
    published, steps = published_fdp_settings(), args.published_steps
    rates = [training_throughput(**published, steps=steps, model="fdp", device=d)
             for d in devices] if steps else []
    row("fdp", published, [f"{r:.2f} ({steps} timed steps after a warm-up)" for r in rates]
        or ["not timed (--published-steps N)"] * len(devices))
    if "cuda" not in devices:
        print("no CUDA device here: CPU only. For reference, on one H200 the published FDP "
              "trains at about 188 clips/s with batch 36 (issue 20).")
    published_mol(devices)


def published_mol(devices: list[str]) -> None:
    """MOL's published preset at the published batch of 32: timed on CUDA, estimated from
    its operation count on the CPU."""
    from mesti.train.inputs import MOLConfig

    config = MOLConfig()
    settings = {"input_size": 144, "batch_size": config.batch_size, "model_config": config}
    cells = []
    for device in devices:
        if device == "cpu":
            cells.append(f"{cpu_matmul_flops() / published_mol_flops():.2f} (estimated)")
        else:
            rate = training_throughput(**settings, steps=5, model="mol", device=device,
                                       repeats=3)
            cells.append(f"{rate:.1f}")
    gflop = published_mol_flops() / 1e9
    print(f"| mol (preset published) | {_shape('mol', settings)} | {config.batch_size} | "
          f"{gflop:.3g} | " + " | ".join(cells) + " |", flush=True)


def published_mol_flops() -> float:
    """Floating-point operations of one training clip (forward, loss, backward) of MOL's
    published preset, counted without computing (meta device)."""
    import torch
    from mesti.train.losses import mol_loss
    from mesti.train.models import mol
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = mol.build("mol", 3, preset="published")
        x, flow = torch.zeros(1, 8, 128, 128), torch.zeros(1, 7, 2, 128, 128)
        landmarks, distance = torch.zeros(1, 8, 68, 2), torch.ones(1, 8)
        label = torch.zeros(1, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        mol_loss(model(x), label, flow, landmarks, distance, 0.5, 0.5).backward()
    return float(counter.get_total_flops())


def cpu_matmul_flops(side: int = 1024, repeats: int = 5) -> float:
    """This CPU's float32 rate on a dense side x side matrix product (median of runs)."""
    import torch

    a, b = torch.rand(side, side), torch.rand(side, side)
    a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2 * side ** 3 / statistics.median(times)


if __name__ == "__main__":
    main()
