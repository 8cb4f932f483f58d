"""Reading and writing safetensors files with numpy only, from the format's definition.

A safetensors file is:
  - 8 bytes: N, the header length, unsigned 64-bit little-endian;
  - N bytes: a UTF-8 JSON object {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]},
    ..., "__metadata__": {str: str}} (metadata optional);
  - the data section; each tensor's bytes are data[begin:end], row-major, little-endian.

This module is part of the float64 reference: it deliberately shares no code with the engine. The writer
exists so tests can build checkpoints (renamed tensors, corrupted headers) byte by byte.
"""

import json
import os
import struct

import numpy as np

# Element sizes of every dtype the format defines (the writer needs them to build bad files too).
DTYPE_SIZES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1,
    "U64": 8, "U32": 4, "U16": 2, "U8": 1,
    "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
}

# Floating dtypes the reference decodes to float64.
FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")


class SafetensorsError(ValueError):
    """A file that is not a well-formed safetensors file."""


class RawTensor:
    """One tensor as stored: dtype name, shape and the raw little-endian bytes."""

    __slots__ = ("dtype", "shape", "data")

    def __init__(self, dtype, shape, data):
        self.dtype = dtype
        self.shape = [int(s) for s in shape]
        self.data = bytes(data)

    def numel(self):
        n = 1
        for s in self.shape:
            n *= s
        return n

    def to_float64(self):
        return decode(self.dtype, self.shape, self.data)

    def __repr__(self):
        return "RawTensor(%s, %s, %d bytes)" % (self.dtype, self.shape, len(self.data))


def decode(dtype, shape, data):
    """Raw bytes -> float64 array of the given shape (F32, F16, BF16, F64)."""
    n = 1
    for s in shape:
        n *= int(s)
    if dtype == "F32":
        a = np.frombuffer(data, dtype="<f4", count=n)
    elif dtype == "F16":
        a = np.frombuffer(data, dtype="<f2", count=n)
    elif dtype == "BF16":
        # bfloat16 is the upper half of an IEEE float32: widen the bits, reinterpret.
        u16 = np.frombuffer(data, dtype="<u2", count=n)
        a = (u16.astype(np.uint32) << np.uint32(16)).view(np.float32)
    elif dtype == "F64":
        a = np.frombuffer(data, dtype="<f8", count=n)
    else:
        raise SafetensorsError("dtype %s is not a floating-point dtype" % dtype)
    return a.astype(np.float64).reshape([int(s) for s in shape])


def encode(array, dtype):
    """float array -> raw little-endian bytes in dtype (F32, F16, BF16 round-to-nearest-even, F64, I64)."""
    a = np.ascontiguousarray(array)
    if dtype == "F32":
        return a.astype("<f4").tobytes()
    if dtype == "F16":
        return a.astype("<f2").tobytes()
    if dtype == "F64":
        return a.astype("<f8").tobytes()
    if dtype == "I64":
        return a.astype("<i8").tobytes()
    if dtype == "I32":
        return a.astype("<i4").tobytes()
    if dtype == "BF16":
        u = a.astype(np.float32).view(np.uint32).astype(np.uint64)
        u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16  # round to nearest even (no NaNs in test weights)
        return u.astype("<u2").tobytes()
    raise SafetensorsError("cannot encode dtype %s" % dtype)


def read_header(path):
    """Returns (header_len, header dict, data_start, file_size); checks only what parsing needs."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise SafetensorsError("%s: shorter than the 8-byte header length" % path)
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise SafetensorsError("%s: header length %d exceeds the file size %d" % (path, n, size))
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError("%s: header is not valid JSON: %s" % (path, e))
    if not isinstance(header, dict):
        raise SafetensorsError("%s: header is not a JSON object" % path)
    return n, header, 8 + n, size


def read_raw(path):
    """Reads every tensor of one file as RawTensor, validating offsets, sizes and dtypes.

    Returns (dict name -> RawTensor in header order, metadata dict or None)."""
    n, header, start, size = read_header(path)
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read()
    out = {}
    meta = header.get("__metadata__")
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info.get("dtype")
        shape = info.get("shape")
        offs = info.get("data_offsets")
        if dt not in DTYPE_SIZES:
            raise SafetensorsError("%s: tensor '%s' has unknown dtype %r" % (path, name, dt))
        if not isinstance(shape, list) or not isinstance(offs, list) or len(offs) != 2:
            raise SafetensorsError("%s: tensor '%s' has a malformed entry" % (path, name))
        b, e = int(offs[0]), int(offs[1])
        if not (0 <= b <= e <= len(data)):
            raise SafetensorsError("%s: tensor '%s' offsets [%d,%d] outside the data section (%d bytes)"
                                   % (path, name, b, e, len(data)))
        numel = 1
        for s in shape:
            numel *= int(s)
        if e - b != numel * DTYPE_SIZES[dt]:
            raise SafetensorsError("%s: tensor '%s' has %d bytes, shape %s x %s needs %d"
                                   % (path, name, e - b, shape, dt, numel * DTYPE_SIZES[dt]))
        out[name] = RawTensor(dt, shape, data[b:e])
    return out, meta


def write_raw(path, tensors, metadata=None, header_override=None):
    """Writes tensors (ordered dict name -> RawTensor) as one safetensors file, data packed in the given
    order. header_override(header_dict) may edit the header before it is serialized (for corrupt files).

    The header is padded with spaces to a multiple of 8 bytes, as the reference implementation does."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = dict(metadata)
    off = 0
    blobs = []
    for name, t in tensors.items():
        header[name] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [off, off + len(t.data)]}
        off += len(t.data)
        blobs.append(t.data)
    if header_override is not None:
        header = header_override(header) or header
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    tmp = path + ".writing"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def write_arrays(path, arrays, dtype="F32", metadata=None):
    """Writes dict name -> float array in one storage dtype."""
    tensors = {}
    for name, a in arrays.items():
        a = np.asarray(a)
        tensors[name] = RawTensor(dtype, a.shape, encode(a, dtype))
    write_raw(path, tensors, metadata=metadata)


INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"


def checkpoint_files(model_dir):
    """The safetensors files of a model directory, in the order the index lists them (or the one file),
    and the weight_map (None for a single file)."""
    idx = os.path.join(model_dir, INDEX_NAME)
    if os.path.exists(idx):
        with open(idx, "r", encoding="utf-8") as f:
            index = json.load(f)
        weight_map = index["weight_map"]
        files = []
        for fn in weight_map.values():
            if fn not in files:
                files.append(fn)
        return files, weight_map
    return [SINGLE_NAME], None


def load_dir_raw(model_dir):
    """Every tensor of a model directory as RawTensor (single file or index + shards)."""
    files, weight_map = checkpoint_files(model_dir)
    out = {}
    for fn in files:
        tensors, _ = read_raw(os.path.join(model_dir, fn))
        for name, t in tensors.items():
            if weight_map is not None and weight_map.get(name) != fn:
                raise SafetensorsError("%s: tensor '%s' is not mapped to this file by the index" % (fn, name))
            if name in out:
                raise SafetensorsError("%s: tensor '%s' appears twice" % (fn, name))
            out[name] = t
    if weight_map is not None:
        missing = [n for n in weight_map if n not in out]
        if missing:
            raise SafetensorsError("index maps tensors no shard holds: %s" % missing[:5])
    return out


def load_dir(model_dir):
    """Every floating tensor of a model directory decoded to float64, and the storage dtype of each."""
    raw = load_dir_raw(model_dir)
    arrays = {}
    dtypes = {}
    for name, t in raw.items():
        if t.dtype in FLOAT_DTYPES:
            arrays[name] = t.to_float64()
        dtypes[name] = t.dtype
    return arrays, dtypes
