"""Damaged copies of the files hvitgan-tf reads back, and what a folder holds before and after.

Kinds of damage (``damage(path, kind)``):

``truncated``  the first half of the file: a copy or a write cut short
``png``        a small valid PNG: another kind of file saved under the name
``text``       /etc/passwd-like lines: a text file that is not ours
``random``     a third of the file's size in seeded random bytes
``json``       valid JSON that is not what the tool wrote (a JSON file copied over another)
``flipped``    the same size with 64 bytes inverted: silent corruption on disk
``hdf5``       a complete, readable HDF5 file of arrays that are not this model's (a
               checkpoint of another model copied over this one)
"""
import io
import json
import os
import random

import numpy as np
from PIL import Image

PASSWD = (b"root:x:0:0:root:/root:/bin/bash\n"
          b"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")


def png_bytes():
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _foreign_hdf5():
    """The bytes of an intact HDF5 file laid out like a Keras weights file, of another model."""
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        handle.create_dataset("layers/dense/vars/0", data=np.ones((3, 5), np.float32))
        handle.create_dataset("layers/dense/vars/1", data=np.zeros((5,), np.float32))
    return buffer.getvalue()


def damage(path, kind):
    """Replace the file at ``path`` by a damaged or foreign one of the given ``kind``."""
    with open(path, "rb") as handle:
        data = handle.read()
    rng = random.Random(13)
    if kind == "truncated":
        new = data[:len(data) // 2]
    elif kind == "png":
        new = png_bytes()
    elif kind == "text":
        new = PASSWD
    elif kind == "random":
        new = rng.randbytes(max(64, len(data) // 3))
    elif kind == "json":
        new = json.dumps({"format": "something/else", "items": [1, 2, 3]}).encode()
    elif kind == "flipped":
        flipped = bytearray(data)
        for index in rng.sample(range(len(data)), 64):
            flipped[index] ^= 0xFF
        new = bytes(flipped)
    elif kind == "hdf5":
        new = _foreign_hdf5()
    else:
        raise ValueError(kind)
    with open(path, "wb") as handle:
        handle.write(new)


def snapshot(folder):
    """``{relative path: bytes}`` of every file under ``folder`` (a folder: ``None``); empty
    when ``folder`` does not exist."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            found[os.path.relpath(os.path.join(root, name), folder) + "/"] = None
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, folder)] = handle.read()
    return found


def error_line(result):
    """The one ``Error:`` line of a CLI result that failed as a user error (exit 2)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]
