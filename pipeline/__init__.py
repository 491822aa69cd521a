"""The preprocessing pipeline, one room per subject; each room's docstring says what it holds.

Rooms, lowest first; a room imports only rooms before it (tests/test_dependency_rules.py):

1. ``stores``: where a store is written, read, verified and exported. Imports no other room.
2. ``faces``: where a face is found and aligned (decode, detect, align, equalise).
3. ``pooling``: temporal weights, their kernels and the apex estimators.
4. ``motion``: flow, strain, active images, magnification, frame sampling (pure functions).
5. ``sample``: the synthetic dataset generator.
6. ``runner``: where a clip's work runs: the stage drivers, per-clip stages, the Dask cluster.
   The only importer of Dask.
7. ``spotting`` (long-video spotting): may import faces, motion, pooling, stores and runner.
8. ``figures``: ``mesti show``'s figures, from stores.

Nothing here imports torch: the trainer (``mesti.train``) reads stores, never the reverse.
"""
