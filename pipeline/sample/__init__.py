"""Sample: the synthetic dataset generator behind ``mesti sample`` (a CASME II-shaped tree of
frames and an annotation sheet, with the truth to check the pipeline against).

May import ``faces`` (to quieten MediaPipe's logs) and ``stores``; nothing else.
"""
