"""What a run reports beside its pooled metrics: per-dataset figures, the spread over seeds,
the predictions table and a markdown summary.

Per-dataset figures are the pooled predictions restricted to one dataset's clips (the way
composite papers report CASME II, SAMM and SMIC-HS beside the composite). Over seeds, each
metric's mean and sample standard deviation (ddof 1) are given with every seed's figure.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .metrics import scores

METRICS = ("UF1", "UAR", "ACC", "WF1")


def per_dataset(datasets: np.ndarray, truth: np.ndarray, predicted: np.ndarray,
                classes: list[str]) -> dict[str, dict]:
    """Each dataset's UF1/UAR/ACC/WF1, clip count and clips per class."""
    result = {}
    for dataset in sorted(set(datasets.tolist())):
        mine = datasets == dataset
        result[dataset] = {
            **scores(truth[mine], predicted[mine], len(classes)), "clips": int(mine.sum()),
            "per_class": {c: int((truth[mine] == k).sum()) for k, c in enumerate(classes)}}
    return result


def aggregate_seeds(runs: list[dict], seeds: list[int]) -> dict:
    """Mean and standard deviation of each metric over seeds (pooled and per dataset), and
    every seed's figures. The means carry the metric names, so tools reading ``UF1`` get
    the mean."""
    def spread(values: list[float]) -> dict[str, float]:
        return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1))
                if len(values) > 1 else 0.0}

    result: dict = {k: spread([r[k] for r in runs])["mean"] for k in METRICS}
    result["std"] = {k: spread([r[k] for r in runs])["std"] for k in METRICS}
    result["seeds"] = list(seeds)
    result["per_seed"] = [{"seed": s, **{k: r[k] for k in METRICS}}
                          for s, r in zip(seeds, runs, strict=True)]
    if "per_dataset" in runs[0]:
        result["per_dataset"] = {
            d: {**{k: spread([r["per_dataset"][d][k] for r in runs]) for k in METRICS},
                "clips": runs[0]["per_dataset"][d]["clips"]}
            for d in runs[0]["per_dataset"]}
    for key in ("clips", "folds", "classes", "protocol", "evaluation", "clip_list", "augment"):
        if key in runs[0]:
            result[key] = runs[0][key]
    result["confusion"] = np.sum([r["confusion"] for r in runs], axis=0).tolist()
    result["device"] = runs[0].get("device")
    result["seconds"] = round(sum(r.get("seconds", 0.0) for r in runs), 1)
    return result


def prediction_rows(datasets, clip_ids, subjects, classes: list[str], labels: np.ndarray,
                    fold_of: np.ndarray, probabilities: np.ndarray) -> list[dict]:
    """One row per tested clip, in table order: the layout of ``predictions.csv``."""
    rows = []
    for i in np.flatnonzero(fold_of != ""):
        row = {"dataset": datasets[i], "clip_id": clip_ids[i], "subject": subjects[i],
               "fold": fold_of[i], "truth": classes[labels[i]],
               "prediction": classes[int(probabilities[i].argmax())]}
        row.update({f"p_{c}": round(float(p), 6) for c, p in zip(classes, probabilities[i],
                                                                 strict=True)})
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        if rows:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def markdown(metrics: dict, title: str) -> str:
    """The run's report: pooled figures, per-dataset rows and, over seeds, mean +- std."""
    multi = "std" in metrics

    def cell(value, key: str = "", dataset: str = "") -> str:
        if isinstance(value, dict):
            return f"{value['mean']:.3f} ± {value['std']:.3f}"
        if multi and not dataset:
            return f"{value:.3f} ± {metrics['std'][key]:.3f}"
        return f"{value:.3f}"

    lines = [f"# {title}", "",
             f"Protocol {metrics.get('protocol')} ({metrics.get('evaluation')}), clip list "
             f"{metrics.get('clip_list')}, augmentation {metrics.get('augment')}, "
             f"{metrics.get('clips')} clips, {metrics.get('folds')} folds"
             + (f", seeds {metrics['seeds']} (mean ± sample std)" if multi else "") + ".", "",
             "| data | clips | UF1 | UAR | ACC |", "|---|---|---|---|---|",
             f"| all (pooled) | {metrics.get('clips')} | " +
             " | ".join(cell(metrics[k], k) for k in ("UF1", "UAR", "ACC")) + " |"]
    for dataset, row in metrics.get("per_dataset", {}).items():
        lines.append(f"| {dataset} | {row['clips']} | " +
                     " | ".join(cell(row[k], k, dataset) for k in ("UF1", "UAR", "ACC")) + " |")
    if multi:
        lines += ["", "| seed | UF1 | UAR | ACC |", "|---|---|---|---|"]
        lines += [f"| {r['seed']} | {r['UF1']:.3f} | {r['UAR']:.3f} | {r['ACC']:.3f} |"
                  for r in metrics["per_seed"]]
    return "\n".join([*lines, ""])
