"""Dataset recipes: each dataset owner's folder and sheet, read into a validated manifest.

Every recipe module exposes the same entry point, ``prepare(root, sheet=None) -> Scan``,
and imports nothing from the rest of the project.
"""

__all__ = ["LONG_VIDEO_RECIPES", "RECIPES"]


def __getattr__(name: str):
    """``RECIPES`` (dataset name -> recipe module), imported on first use: the pipeline's
    workers import this package for a constant and need no sheet reader (pandas)."""
    if name == "RECIPES":
        from . import casme2, casme3, samm, smic, videos

        recipes = {m.NAME: m for m in (casme2, samm, smic, casme3, videos)}
        globals()["RECIPES"] = recipes  # imported once
        return recipes
    if name == "LONG_VIDEO_RECIPES":  # long videos for spotting (long_videos.py)
        from . import casme2_lv, casme3_lv, samm_lv

        recipes = {m.NAME: m for m in (casme2_lv, samm_lv, casme3_lv)}
        globals()["LONG_VIDEO_RECIPES"] = recipes
        return recipes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
