"""Stores: where a store is written, read, verified, described and exported.

- ``read``: opening a store (a folder, a zip or a URL) and reading it.
- ``limits``: ``ReadLimits`` and the bounded zstd codec: what reading an untrusted store may
  cost; ``StoreError``.
- ``write``: the writer: layout, locks, finalising and the consolidated metadata.
- ``keys``: content keys and their recipe (the writer stores them, reader and verify
  recompute them); the manifest fields every clip carries.
- ``verify``, ``info``, ``export``: ``mesti cache``'s commands (verify and repair, describe,
  export as one zip); ``archive`` holds what they share, so that none imports another but
  export, which verifies first.

The lowest room: it imports no other room of ``mesti.pipeline`` (cache/README.md holds the
format it reads and writes).
"""
