"""Pooling: how a clip's frames are pooled into one image, and which frame is the apex.

- ``weights``: the temporal weights of the dynamic-image variants.
- ``kernels``: the Numba kernels that apply them.
- ``apex``: the apex estimators (annotated, middle, landmark or image motion).

May import ``faces`` (the 68-point landmarks) and ``stores``; nothing else of ``mesti.pipeline``.
"""
