"""What reading an untrusted store may cost: ``ReadLimits`` (sizes, counts, URL timeouts and
retries, each settable with a ``MESTI_<NAME>`` environment variable) and a zstd codec that
refuses a chunk declaring more bytes than its shape holds, before the decoder allocates them.
``StoreError``, the one exception a bad store raises, lives here so that the limits can raise
it. Imports no other module of the store room.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, fields

import zarr
from zarr.codecs import ShardingCodec, ZstdCodec


class StoreError(ValueError):
    """A location that is not a usable mesti store."""


@dataclass(frozen=True)
class ReadLimits:
    """Bounds on what reading an untrusted store may cost, checked before allocating.

    Defaults follow the layout: a clip is at most ``max_frames`` images of at most
    ``max_side`` x ``max_side`` pixels (the micro-expression datasets' longest window is
    under 700 frames at 200 fps; crops are 224 or 112 pixels). Each knob can be set with an
    environment variable ``MESTI_<NAME>`` (``MESTI_URL_TIMEOUT_S=60``), which reaches the
    stage's Dask workers and the trainer alike; cache/README.md lists them.
    """

    max_frames: int = 2000           # first axis of any array (frames of a clip, images)
    max_side: int = 1024             # height and width of an image
    max_array_bytes: int = 1 << 30   # decoded bytes of one array (and of one chunk)
    max_chunks: int = 4096           # chunks of one array (inner chunks of a shard included)
    max_metadata_bytes: int = 16 << 20   # a zarr.json, SHA256SUMS or MANIFEST.json
    url_timeout_s: float = 30.0      # connect and read timeout of every URL request
    url_retries: int = 3             # tries after the first, for transient URL errors
    url_backoff_s: float = 0.5       # first back-off delay, doubled after each try

    @classmethod
    def from_env(cls, environ: dict | None = None) -> ReadLimits:
        """The defaults, overridden by ``MESTI_<NAME>`` environment variables; a value that is
        not a number, or is outside its range (``LIMIT_RANGES``), fails by name: a timeout of
        0 or a huge back-off would make a read wait forever, and ``nan`` would compare false."""
        environ = os.environ if environ is None else environ
        values = {}
        for field in fields(cls):
            name = f"MESTI_{field.name.upper()}"
            text = environ.get(name)
            if text is None:
                continue
            kind = int if field.type in (int, "int") else float
            low, high = LIMIT_RANGES[field.name]
            allowed = f"allowed: {_range_text(field.name)}"
            try:
                value = kind(text.strip())
            except ValueError as error:
                what = "an integer" if kind is int else "a number"
                raise StoreError(f"{name}={text!r} is not a number ({what}, {allowed})") \
                    from error
            if not math.isfinite(value) or not low <= value <= high or (
                    field.name == "url_timeout_s" and value == 0):
                raise StoreError(f"{name}={text!r} is out of range ({allowed})")
            values[field.name] = value
        limits = cls(**values)
        waits = limits.url_backoff_s * (2 ** limits.url_retries - 1)
        if waits > MAX_TOTAL_BACKOFF_S:
            raise StoreError(f"MESTI_URL_BACKOFF_S={limits.url_backoff_s:g} with "
                             f"MESTI_URL_RETRIES={limits.url_retries} would wait {waits:g} s "
                             f"between tries (allowed: at most {MAX_TOTAL_BACKOFF_S} s in all)")
        return limits


# Each ReadLimits knob's allowed values (inclusive; the timeout must also be above 0): a
# bound at least 1 (0 would refuse every store), a timeout that ends, a bounded back-off.
LIMIT_RANGES: dict[str, tuple[float, float]] = {
    "max_frames": (1, 10**9),
    "max_side": (1, 10**6),
    "max_array_bytes": (1, 2**62),
    "max_chunks": (1, 10**9),
    "max_metadata_bytes": (1, 2**62),
    "url_timeout_s": (0, 3600),
    "url_retries": (0, 10),
    "url_backoff_s": (0, 60),
}
MAX_TOTAL_BACKOFF_S = 3600  # the sum of the waits of one request's retries


def _range_text(name: str) -> str:
    low, high = LIMIT_RANGES[name]
    if name == "url_timeout_s":
        return f"above 0 and at most {high}"
    return f"{low} to {high}"


def zstd_content_size(data: bytes) -> int | None:
    """The decompressed size a zstd frame header declares; None where it declares none.

    Raises ValueError for bytes that do not start a zstd frame.
    """
    if len(data) < 5 or data[:4] != b"\x28\xb5\x2f\xfd":
        raise ValueError("not a zstd frame")
    descriptor = data[4]
    size_flag, single_segment, dictionary_flag = descriptor >> 6, descriptor >> 5 & 1, \
        descriptor & 3
    position = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[dictionary_flag]
    width = (1 if single_segment else 0, 2, 4, 8)[size_flag]
    if width == 0:
        return None
    if len(data) < position + width:
        raise ValueError("truncated zstd frame header")
    size = int.from_bytes(data[position:position + width], "little")
    return size + 256 if width == 2 else size


class BoundedZstdCodec(ZstdCodec):
    """zstd that refuses a frame declaring more bytes than its chunk holds, before the
    decoder allocates them: a 64 KB chunk cannot inflate to gigabytes."""

    async def _decode_single(self, chunk_bytes, chunk_spec):
        expected = math.prod(chunk_spec.shape) * chunk_spec.dtype.to_native_dtype().itemsize
        raw = chunk_bytes.as_numpy_array()[:18].tobytes()
        declared = zstd_content_size(raw)
        if declared is None or declared > expected:
            raise ValueError(f"zstd chunk declares {declared} decompressed bytes; its chunk of "
                             f"shape {tuple(chunk_spec.shape)} holds {expected}")
        return await super()._decode_single(chunk_bytes, chunk_spec)


def _bounded_codecs(codecs: tuple) -> tuple:
    """``codecs`` with every zstd codec, nested ones in a shard included, made bounded."""
    bounded = []
    for codec in codecs:
        if isinstance(codec, ShardingCodec):
            codec = ShardingCodec(chunk_shape=codec.chunk_shape,
                                  codecs=_bounded_codecs(codec.codecs),
                                  index_codecs=_bounded_codecs(codec.index_codecs),
                                  index_location=codec.index_location)
        elif type(codec) is ZstdCodec:
            codec = BoundedZstdCodec(level=codec.level, checksum=codec.checksum)
        bounded.append(codec)
    return tuple(bounded)


def bounded(array: zarr.Array) -> zarr.Array:
    """The same array read with ``BoundedZstdCodec`` in place of zarr's zstd.

    The bound lives in this handle alone: zarr's codec registry and configuration are left
    as they are, so other zarr users in the process decode as they always do.
    """
    metadata = array.metadata
    if not isinstance(metadata.codecs, tuple) or not hasattr(metadata, "dimension_names"):
        return array  # not zarr v3 metadata: the layout check refuses it
    codecs = _bounded_codecs(metadata.codecs)
    inner = array.async_array
    return zarr.Array(type(inner)(metadata=dataclasses.replace(metadata, codecs=codecs),
                                  store_path=inner.store_path, config=inner._config))
