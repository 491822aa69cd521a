"""Training throughput of the three models at the sample's settings.

    python -m bench.training [--params params.yaml] [--steps 5] [--repeats 3]

Prints training images (MEGANet) or clips (FDP, MOL) per second on the CPU, and on CUDA
when a device is present: one warm-up step, then ``--repeats`` runs of ``--steps`` steps of
each model's real training step (forward, its full loss, backward, Adam) on random inputs of
the shapes the sample's params give (sections ``train``, ``sequences``, ``fdp``, ``mol``);
the median run. The benchmark's MEGANet rows (``bench.run``, item 7) use the same function.

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
    from mesti.pipeline.sequences import SequencesConfig
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


def _shape(model: str, settings: dict) -> str:
    config = settings.get("model_config")
    if model == "meganet":
        return f"images 3x{settings['input_size']}x{settings['input_size']}"
    if model == "fdp":
        return f"clips 8x{config.size}x{config.size}"
    return (f"clips 8x{config.size}x{config.size} (crop {config.crop} of "
            f"{settings['input_size']}), preset {config.preset}")


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"training throughput at {args.params}'s settings: median of {args.repeats} runs of "
          f"{args.steps} steps after a warm-up step; torch threads {torch.get_num_threads()}")
    print("| model | samples | batch | " + " | ".join(f"{d} per s" for d in devices) + " |")
    print("|---|---|---|" + "---|" * len(devices))
    for model, settings in sample_settings(args.params).items():
        rates = [training_throughput(**settings, steps=args.steps, model=model, device=d,
                                     repeats=args.repeats) for d in devices]
        print(f"| {model} | {_shape(model, settings)} | {settings['batch_size']} | "
              + " | ".join(f"{r:.1f}" for r in rates) + " |", flush=True)
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
    print(f"| mol | {_shape('mol', settings)} | {config.batch_size} | " + " | ".join(cells)
          + " |", flush=True)


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
