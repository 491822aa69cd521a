"""Spotting in long videos: where micro- and macro-expressions are, not what they are.

What it holds:

- ``evaluation.py``: the MEGC spotting evaluation (IoU >= 0.5 true positives, precision,
  recall and F1 from counts summed over the videos of a dataset). Pure Python: imports
  neither numpy nor the pipeline, so ``mesti spot-eval`` runs on the core install.
- ``synthetic.py``: the synthetic sample's long-video mode (CAS(ME)^2 layout and sheet).
- ``series.py``: the long-video store: aligned face track and per-region flow and strain
  series, streamed in time chunks.
- ``peaks.py``: a spotter that needs no training (region-wise peak detection with
  thresholds relative to each video's own statistics); ``spots.csv`` out.
- ``learned.py``: a small learned spotter (softmax regression on windows of the series)
  trained under leave-one-subject-out.
- ``figures.py``: one figure per video (series, thresholds, truth, spotted intervals).
- ``config.py`` (the params.yaml section) and ``stage.py`` (the stages over a manifest).

What it may import: numpy, zarr, OpenCV, MediaPipe through ``pipeline/faces/align.py``, the motion
functions of ``pipeline/motion/``, frame reading from ``pipeline/faces/decode.py``, and the
long-video manifest of ``datasets_manifest/long_videos.py``. Never Dask (videos run one
after the other; ``pipeline/runner/`` is the only Dask room) and never torch.
"""
