"""Faces: where a face is found and aligned.

- ``decode``: a clip's frames read from image files or a video, in order, at their own size.
- ``align``: MediaPipe's face detection and face mesh, the eye-line alignment, the drift check
  and the equalisation of the crop.
- ``landmarks68``: the iBUG/dlib 68-point convention read off MediaPipe's face mesh.

May import ``stores`` only (the layout's clip-id rule); nothing else of ``mesti.pipeline``.
"""
