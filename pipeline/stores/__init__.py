"""Stores: where a store is written, read, verified, described and exported.

- ``read``: opening a store (a folder, a zip or a URL) and reading it within ``ReadLimits``.
- ``write``: the writer: layout, content keys, finalising and the consolidated metadata.
- ``tools``: ``mesti cache``'s verify, repair, info and export.

The lowest room: it imports no other room of ``mesti.pipeline`` (cache/README.md holds the
format it reads and writes).
"""
