"""Runner: where a clip's work runs.

- ``run``: the stages' drivers (input, output, metrics, failures) and the code lists hashed
  into every clip's content key.
- ``cluster``: where the tasks run: ``ClusterOptions`` and the Dask client they give.
- ``stages``: the per-clip functions of the faces and modalities stages.
- ``sequences``: the per-clip function of the sequences stage.

The only room that imports Dask. It may import every room below it: stores, faces, pooling,
motion and sample; none of them imports it.
"""
