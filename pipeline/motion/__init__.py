"""Motion inputs computed from aligned faces: what the flow-based and sequence models consume.

- ``flow``: Dual TV-L1 optical flow (Zach, Pock, Bischof 2007; OpenCV's implementation, as
  STSTNet, OFF-ApexNet, MEAN and MOL use it), optical strain, the scalings to 8 bits, and a
  colour-wheel view for figures.
- ``active``: OrigiNet's active image (Verma et al., IJCNN 2020).
- ``magnify``: linear Eulerian video magnification (Wu et al., SIGGRAPH 2012).
- ``sampling``: which frames of a window a sequence model sees (FDP, MOL, TIM).

Every function here is pure (arrays in, arrays out); docs/design.md section 8 holds the formulas.
May import ``pooling`` (the active image's weights); nothing else of ``mesti.pipeline``.
"""
