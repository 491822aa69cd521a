"""Where the real face videos are: ../shared/real_clips/ beside the project (not in the repo),
or the folder named by MESTI_REAL_CLIPS; tests using them skip when it is absent."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

CLIPS = Path(os.environ.get("MESTI_REAL_CLIPS")
             or Path(__file__).resolve().parents[2] / "shared" / "real_clips")


def needs(*names: str) -> pytest.MarkDecorator:
    """Skip unless every named video is in CLIPS, saying where they were looked for."""
    return pytest.mark.skipif(not all((CLIPS / n).is_file() for n in names),
                              reason=f"real face clips not found at {CLIPS} (kept outside the "
                                     "repo; set MESTI_REAL_CLIPS to their folder)")


def frame(name: str, index: int = 0) -> np.ndarray:
    """One decoded frame of a real video, RGB."""
    capture = cv2.VideoCapture(str(CLIPS / name))
    try:
        for _ in range(index + 1):
            ok, image = capture.read()
            assert ok, f"{name} has no frame {index}"
    finally:
        capture.release()
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
