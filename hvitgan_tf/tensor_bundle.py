"""What a TensorFlow checkpoint's index (``variables/variables.index`` of a SavedModel) says about
its data shards: how many there are, and which shard, offset and length hold each tensor.

TensorFlow reads the index but tells neither, and its errors for a damaged shard ("Read less
bytes than requested", a checksum mismatch) name no file. With the index read here, a
damaged SavedModel can be reported by the shard that is missing, cut short, or holds the tensor
that does not read back (``exported_model.load_saved_model``).

The index is a LevelDB-style table (TensorFlow's ``tsl/lib/io/table``): a fixed-size footer
points at an index block, whose entries point at data blocks, whose entries map a tensor's key
to a serialized ``BundleEntryProto`` (the empty key to the ``BundleHeaderProto``). TensorFlow
writes these blocks uncompressed; anything else is refused as unreadable.
"""
from __future__ import annotations

import dataclasses
import struct
from typing import Dict, List, Tuple

_MAGIC = 0xDB4775248B80FB57
_FOOTER_BYTES = 48  # two block handles of at most 20 bytes each, padded, then the magic
_TRAILER_BYTES = 5  # after each block: compression type (1 byte) and a checksum (4)
_UNCOMPRESSED = 0


@dataclasses.dataclass
class BundleIndex:
    """The parts of an index that locate the data: ``entries`` maps each key to
    ``(shard, offset, size)`` (a tensor saved in slices has one key per slice)."""

    num_shards: int
    entries: Dict[bytes, Tuple[int, int, int]]

    def shard_path(self, prefix: str, shard: int) -> str:
        """``PREFIX.data-0000S-of-0000N``, the file of shard ``shard``."""
        return f"{prefix}.data-{shard:05d}-of-{self.num_shards:05d}"

    def bytes_needed(self) -> Dict[int, int]:
        """Shard -> the length its file must have at least (the end of its last tensor)."""
        needed = {shard: 0 for shard in range(self.num_shards)}
        for shard, offset, size in self.entries.values():
            if size:
                needed[shard] = max(needed.get(shard, 0), offset + size)
        return needed

    def shards_of(self, name: str) -> List[int]:
        """The shards holding the bytes of the tensor ``name``: its own entry's, or those of
        its slices (keys ``\\x00 NAME \\x00\\x01 ...``, TensorFlow's ordered encoding)."""
        key = name.encode("utf-8")
        slice_prefix = b"\x00" + _escaped(key) + b"\x00\x01"
        return sorted({shard for entry, (shard, _, size) in self.entries.items()
                       if size and (entry == key or entry.startswith(slice_prefix))})


def _escaped(key: bytes) -> bytes:
    """``key`` as TensorFlow's ordered encoding writes a string: 0x00 and 0xff escaped."""
    return b"".join(b"\x00\xff" if byte == 0 else b"\xff\x00" if byte == 0xFF
                    else bytes([byte]) for byte in key)


def read_index(path: str) -> BundleIndex:
    """The :class:`BundleIndex` of the index file ``path``; ``ValueError`` when it is not one
    that can be read (cut short, overwritten, compressed)."""
    from tensorflow.core.protobuf import tensor_bundle_pb2

    with open(path, "rb") as handle:
        data = handle.read()
    if len(data) < _FOOTER_BYTES or struct.unpack("<Q", data[-8:])[0] != _MAGIC:
        raise ValueError("no table footer at the end")
    footer = data[-_FOOTER_BYTES:]
    _, position = _varint(footer, 0)  # the metaindex block's offset and size: not needed
    _, position = _varint(footer, position)
    index_offset, position = _varint(footer, position)
    index_size, _ = _varint(footer, position)

    num_shards, entries = None, {}
    for _, handle_bytes in _block_entries(data, index_offset, index_size):
        offset, position = _varint(handle_bytes, 0)
        size, _ = _varint(handle_bytes, position)
        for key, value in _block_entries(data, offset, size):
            if key == b"":
                header = tensor_bundle_pb2.BundleHeaderProto.FromString(value)
                num_shards = header.num_shards
            else:
                entry = tensor_bundle_pb2.BundleEntryProto.FromString(value)
                entries[key] = (entry.shard_id, entry.offset, entry.size)
    if num_shards is None:
        raise ValueError("no bundle header")
    return BundleIndex(num_shards=num_shards, entries=entries)


def _varint(data: bytes, position: int) -> Tuple[int, int]:
    """``(value, next position)`` of the little-endian base-128 number at ``position``."""
    value = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise ValueError("a number runs past its block")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def _block_entries(data: bytes, offset: int, size: int):
    """The ``(key, value)`` pairs of the block at ``offset`` (keys share prefixes with the
    previous key; a table of restart points closes the block)."""
    if offset + size + _TRAILER_BYTES > len(data):
        raise ValueError("a block runs past the end of the file")
    if data[offset + size] != _UNCOMPRESSED:
        raise ValueError("a compressed block")
    block = data[offset:offset + size]
    if len(block) < 4:
        raise ValueError("a block without its restart table")
    restarts = struct.unpack("<I", block[-4:])[0]
    end = len(block) - 4 * (restarts + 1)
    if end < 0:
        raise ValueError("a block without its restart table")
    position, key = 0, b""
    while position < end:
        shared, position = _varint(block, position)
        unshared, position = _varint(block, position)
        length, position = _varint(block, position)
        if shared > len(key) or position + unshared + length > end:
            raise ValueError("an entry runs past its block")
        key = key[:shared] + block[position:position + unshared]
        position += unshared
        yield key, block[position:position + length]
        position += length
