"""The 68-point landmark convention (iBUG 300-W, dlib) read off MediaPipe's face mesh.

The sequence models (MOL's landmark head, FDP's kin) use the 68 points of Sagonas et al.,
"300 Faces in-the-Wild Challenge" (ICCV-W 2013), as dlib predicts them. MediaPipe's mesh
(Kartynnik et al. 2019, 468 points; 478 with iris refinement, whose first 468 are the
same) has no such subset, so each of the 68 points is taken from the mesh vertex that
sits where the 68-point annotation guide puts it. "Left"/"right" below are image sides
of a frontal face, as in dlib's numbering (point 0 is on the image left):

- 0-16 jaw, image left ear level -> chin (8: mesh 152) -> image right: face-oval vertices,
  mirror pairs of the mesh (127/356, 234/454, 93/323, 132/361, 58/288, 136/365, 150/379,
  176/400);
- 17-21, 22-26 brows, outer -> inner on the image left, inner -> outer on the right:
  the brows' upper contour (70 63 105 66 107 / 336 296 334 293 300);
- 27-30 nose bridge to tip (168 197 5 4); 31-35 nostril base, left to right (98 97 2 326 327);
- 36-41 image-left eye from its outer corner (33) clockwise: 33 160 158 133 153 144;
  42-47 image-right eye from its inner corner (362): 362 385 387 263 373 380;
- 48-59 outer lips from the left corner (61) clockwise: 61 40 37 0 267 270 291 321 314 17 84 91;
- 60-67 inner lips from the left inner corner (78): 78 81 13 311 308 402 14 178.

The mapping is checked against MediaPipe's own region lists (face oval, eyes, brows,
lips) and against the left-right mirror structure of the 68 points (tests/test_motion.py).
The pupil centre is the mean of each eye's six points (MediaPipe's iris points exist only
with refinement, which the faces stage does not run).
"""

from __future__ import annotations

import numpy as np

JAW = (127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356)
BROW_LEFT = (70, 63, 105, 66, 107)
BROW_RIGHT = (336, 296, 334, 293, 300)
NOSE_BRIDGE = (168, 197, 5, 4)
NOSE_BASE = (98, 97, 2, 326, 327)
EYE_LEFT = (33, 160, 158, 133, 153, 144)
EYE_RIGHT = (362, 385, 387, 263, 373, 380)
LIPS_OUTER = (61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91)
LIPS_INNER = (78, 81, 13, 311, 308, 402, 14, 178)

MESH_TO_68 = (JAW + BROW_LEFT + BROW_RIGHT + NOSE_BRIDGE + NOSE_BASE + EYE_LEFT + EYE_RIGHT
              + LIPS_OUTER + LIPS_INNER)

# Where the 68-point regions sit in the 68 numbering (brows and mouth: where micro-expressions
# happen; the apex estimators look there).
REGIONS_68 = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36),
              "eyes": range(36, 48), "mouth": range(48, 68)}


def to_68(mesh: np.ndarray) -> np.ndarray:
    """The 68 points (..., 68, 2) of face-mesh points (..., 468 or 478, 2)."""
    if mesh.shape[-2] < 468:
        raise ValueError(f"a face mesh has 468 (or 478) points, got {mesh.shape[-2]}")
    return mesh[..., list(MESH_TO_68), :]


def pupil_distance(points68: np.ndarray) -> np.ndarray:
    """Distance between the two eye centres (means of points 36-41 and 42-47), per face."""
    left = points68[..., 36:42, :].mean(axis=-2)
    right = points68[..., 42:48, :].mean(axis=-2)
    return np.linalg.norm(right - left, axis=-1)
