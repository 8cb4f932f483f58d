#!/usr/bin/env python3
"""Writes small valid GGUF files: seeds for the fuzz_gguf target (mk/fuzz_model.mk) and the oracle files
that tests/c/test_gguf.c opens.

Two writers: a few lines of struct code (always; standard library only) and, when the `gguf` Python
package is installed, its GGUFWriter (llama.cpp's own writer). The GGUFWriter files include
seed_all_types: one tensor per ggml type the package knows, named after the type, with the byte count
the package computes stored in the metadata array "test.nbytes" (and the block size in "test.block"), so
the C reader's type table is checked against an independent source.

usage: make_gguf_seeds.py CORPUS_DIR      prints "gguf seeds: N files (...)" """
import os
import struct
import sys


def _str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


F32, Q8_0, I8 = 0, 8, 24
DEFAULT_TENSORS = [("w", F32, [4, 2], 32), ("q", Q8_0, [32, 1], 34)]


def handmade(version=3, alignment=None, tensors=DEFAULT_TENSORS, tail=b""):
    """A file written without the gguf package: scalar, string and nested-array metadata and the given
    tensors (name, ggml type, ne, bytes), each placed at the next aligned offset. tail: bytes appended
    to a file without tensors (the last value then ends exactly at the end of the file)."""
    kv = [_str("general.architecture") + struct.pack("<I", 8) + _str("llama"),
          _str("t.u32") + struct.pack("<II", 4, 7),
          _str("t.f64") + struct.pack("<Id", 12, 0.25),
          _str("t.bool") + struct.pack("<IB", 7, 1),
          _str("t.strs") + struct.pack("<IIQ", 9, 8, 2) + _str("a") + _str(""),
          _str("t.nested") + struct.pack("<IIQ", 9, 9, 2) + struct.pack("<IQBB", 0, 2, 1, 2)
          + struct.pack("<IQ", 5, 0)]
    align = 32
    if alignment is not None:
        kv.append(_str("general.alignment") + struct.pack("<II", 4, alignment))
        align = alignment
    if tail:
        kv.append(tail)
    ti, off = b"", 0
    for name, typ, ne, nbytes in tensors:
        ti += _str(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        ti += struct.pack("<IQ", typ, off)
        off += (nbytes + align - 1) // align * align
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kv)) + b"".join(kv) + ti
    if not tensors:
        return head
    head += b"\0" * ((-len(head)) % align)
    data = bytearray(off)
    for i in range(len(data)):
        data[i] = (i * 7 + 1) & 0xFF
    return head + bytes(data)


def with_gguf(corpus):
    try:
        import numpy as np
        import gguf
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType
    except ImportError as e:
        return f"no GGUFWriter seeds: {e}"
    import logging
    logging.getLogger("gguf").setLevel(logging.ERROR)

    def write(name, fill, alignment=None, version=None):
        path = os.path.join(corpus, name)
        w = gguf.GGUFWriter(path, "llama")
        if alignment:
            w.add_custom_alignment(alignment)
        fill(w)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        if version is not None:
            with open(path, "r+b") as f:
                f.seek(4)
                f.write(struct.pack("<I", version))

    def all_types(w):
        nbytes, block = [], []
        for t in GGMLQuantizationType:
            if t not in GGML_QUANT_SIZES:
                continue
            be, bb = GGML_QUANT_SIZES[t]
            raw = (np.arange(bb, dtype=np.uint32) * 13 % 251).astype(np.uint8).reshape(1, bb)
            w.add_tensor(t.name, raw, raw_dtype=t)
            nbytes.append(bb)
            block.append(be)
        w.add_key_value("test.nbytes", nbytes, GGUFValueType.ARRAY, sub_type=GGUFValueType.UINT64)
        w.add_key_value("test.block", block, GGUFValueType.ARRAY, sub_type=GGUFValueType.UINT32)

    def meta(w):
        w.add_uint8("t.u8", 200)
        w.add_int8("t.i8", -100)
        w.add_uint16("t.u16", 60000)
        w.add_int16("t.i16", -30000)
        w.add_uint32("t.u32", 4000000000)
        w.add_int32("t.i32", -2000000000)
        w.add_float32("t.f32", 1.5)
        w.add_bool("t.true", True)
        w.add_uint64("t.u64", 123456789012)
        w.add_int64("t.i64", -1234567890123)
        w.add_float64("t.f64", 0.1)
        w.add_string("t.str", "h\u00e9llo")
        w.add_array("t.arr_i32", [1, -2, 3])
        w.add_array("t.arr_f32", [0.5, -1.0])
        w.add_array("t.arr_bool", [True, False])
        w.add_array("t.arr_str", ["a", "", "b c"])
        w.add_array("t.nested", [[1, 2], ["x"], [[True]]])
        w.add_tensor("tok_embd.weight", np.arange(24, dtype=np.float32).reshape(3, 8))
        w.add_tensor("norm.weight", np.ones(8, dtype=np.float16))
        w.add_tensor("ids", np.arange(4, dtype=np.int32))

    def quant(w):
        w.add_tensor("blk.0.attn_q.weight", np.zeros((2, 2 * 34), np.uint8), raw_dtype=GGMLQuantizationType.Q8_0)
        w.add_tensor("blk.0.ffn_up.weight", np.zeros((1, 144), np.uint8), raw_dtype=GGMLQuantizationType.Q4_K)
        w.add_tensor("output.weight", np.zeros((2, 8), np.uint16), raw_dtype=GGMLQuantizationType.BF16)

    def tokenizer(w):
        w.add_tokenizer_model("gpt2")
        w.add_token_list(["<s>", "a", "b", "ab", "\u0120c"])
        w.add_token_scores([0.0, -1.0, -2.0, -3.0, -4.0])
        w.add_token_types([3, 1, 1, 1, 1])
        w.add_token_merges(["a b"])
        w.add_bos_token_id(0)

    write("seed_gguf_all_types", all_types)
    write("seed_gguf_meta", meta)
    write("seed_gguf_meta_v2", meta, version=2)
    write("seed_gguf_quant_align64", quant, alignment=64)
    write("seed_gguf_tokenizer", tokenizer)
    write("seed_gguf_no_tensors", lambda w: w.add_uint32("t.u32", 5))
    try:
        from importlib.metadata import version
        v = version("gguf")
    except Exception:
        v = "(version unknown)"
    return "GGUFWriter seeds: gguf " + v


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    corpus = sys.argv[1]
    os.makedirs(corpus, exist_ok=True)
    seeds = {
        "seed_hand_v3": handmade(),
        "seed_hand_v2": handmade(version=2),
        "seed_hand_align16": handmade(alignment=16),
        # Tight layouts, so that a one-step change of an offset, count or length crosses a bound: tensors
        # that end exactly where the next begins (alignment 1) or one byte past an alignment boundary, and
        # a file whose last value, an array, ends exactly at the end of the file.
        "seed_hand_align1": handmade(alignment=1, tensors=[("a", I8, [3], 3), ("b", I8, [2], 2),
                                                          ("c", F32, [1], 4)]),
        "seed_hand_tight": handmade(tensors=[("a", I8, [33], 33), ("b", F32, [8], 32), ("c", I8, [1], 1)]),
        "seed_hand_tail_array": handmade(tensors=[], tail=_str("t.tail") + struct.pack("<IIQ", 9, 2, 3)
                                         + struct.pack("<3H", 1, 2, 3)),
    }
    for name, blob in seeds.items():
        with open(os.path.join(corpus, name), "wb") as f:
            f.write(blob)
    note = with_gguf(corpus)
    n = len([f for f in os.listdir(corpus) if f.startswith("seed_")])
    print(f"gguf seeds: {n} files in {corpus} ({note})")


if __name__ == "__main__":
    main()
