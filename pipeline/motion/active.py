"""OrigiNet's active image: the sum of every later-minus-earlier frame difference.

Verma, Vipparthi, Singh, "Non-Linearities Improve OrigiNet based on Active Imaging for
Micro Expression Recognition" (IJCNN 2020). The intended formula is
AI = sum_{j>k} (I_j - I_k) = sum_t (2t - N - 1) I_t over grey frames I_1..I_N, which is
Bilen's raw dynamic image on grey frames; the released loop (MonuVermaCV/OrigNet) skips
the immediately preceding frame and clips to 8 bits without normalising, and is not copied.
"""

from __future__ import annotations

import numpy as np

from ..pooling.weights import dynamic_raw


def active_image(grey: np.ndarray) -> np.ndarray:
    """Active image (H, W) float32 of grey frames (N, H, W): sum_t (2t - N - 1) I_t."""
    if grey.ndim != 3 or len(grey) < 1:
        raise ValueError(f"grey frames (N, H, W) expected, got shape {grey.shape}")
    weights = dynamic_raw(len(grey)).astype(np.float64)
    return np.tensordot(weights, grey.astype(np.float64), axes=1).astype(np.float32)
