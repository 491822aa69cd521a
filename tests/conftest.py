import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest


@pytest.fixture(scope="session")
def small_stores(tmp_path_factory) -> Path:
    """2 subjects x 2 clips of the synthetic sample through the real stages: ``manifest/``,
    ``faces.zarr``, ``modalities.zarr``, and the modality store exported as
    ``export/modalities.zip`` (what a receiving lab gets)."""
    import fakes
    from mesti.pipeline.faces.align import FacesConfig
    from mesti.pipeline.runner.cluster import ClusterOptions
    from mesti.pipeline.runner.run import run_faces, run_modalities
    from mesti.pipeline.runner.stages import ModalitiesConfig
    from mesti.pipeline.stores.export import export_store

    tmp = tmp_path_factory.mktemp("small_stores")
    fakes.sample_dataset(tmp, seed=5, subjects=2, min_clips=2, max_clips=2, min_frames=16,
                         max_frames=20)
    serial = ClusterOptions(workers=0, progress=False)
    run_faces(tmp / "manifest" / "manifest.csv", tmp / "faces.zarr", FacesConfig(), serial)
    run_modalities(tmp / "faces.zarr", tmp / "modalities.zarr", ModalitiesConfig(), serial)
    (tmp / "export").mkdir()
    export_store(tmp / "modalities.zarr", tmp / "export" / "modalities.zip")
    return tmp
