"""The networks the trainer fits, one module per paper, each read top-down as in timm:
blocks, the model with ``forward_features`` / ``forward_head``, a builder, named variants."""
