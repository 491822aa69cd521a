"""Dataset recipes: each dataset owner's folder and sheet, read into a validated manifest.

Every recipe module exposes the same entry point, ``prepare(root, sheet=None) -> Scan``,
and imports nothing from the rest of the project.
"""

from . import casme2, casme3, samm, smic, videos

RECIPES = {m.NAME: m for m in (casme2, samm, smic, casme3, videos)}

__all__ = ["RECIPES"]
