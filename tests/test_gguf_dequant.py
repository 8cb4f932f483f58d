"""GGUF dequantization (host/model/gguf_dequant.c) against the gguf Python package's
gguf.quants.dequantize, bit for bit.

The C side runs through tools/gguf_dequant.c (built by mk/gguf.mk as $(BUILD)/tools/gguf_dequant; found
through GGUF_DEQUANT_BIN, else next to LOGITLENS_BIN, else under build/). For every supported type:

- blocks as a quantizer writes them (gguf.quants.quantize of random floats where gguf can quantize the
  type; for the K-quants, which it cannot quantize, random bodies with positive scales of usual sizes),
- random bodies with random finite f16 scales (zeros, subnormals, negatives, the largest finite values),
  so that every bit of every field is exercised,
- fully random bytes, scales included (Inf and NaN scales give NaN outputs: NaN positions must agree,
  other elements bit for bit),

each over several shapes: one block, one row of several blocks, several rows, a 3-D tensor, and one large
enough for the OpenMP path. F16, BF16 and F32 are also checked on every 16-bit pattern / random 32-bit
patterns with NaN payloads compared exactly. Unsupported ggml types must be reported as such.

A failure names the type, the case and the first differing element with both bit patterns.
"""

import os
import subprocess

import numpy as np
import pytest

try:
    import gguf
    from gguf import GGMLQuantizationType as QT
except ImportError as e:  # pragma: no cover - depends on the environment
    pytest.skip(f"the gguf Python package is not importable ({e}); pip install gguf==0.19.0",
                allow_module_level=True)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SUPPORTED = [QT.F32, QT.F16, QT.BF16, QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1, QT.Q8_0,
             QT.Q2_K, QT.Q3_K, QT.Q4_K, QT.Q5_K, QT.Q6_K]

# Byte offsets of the f16 scale fields inside one block (from the block layouts in
# host/model/gguf_dequant.c's header); the first is the multiplier d, a second one the min / offset.
F16_SCALES = {
    QT.Q4_0: [0], QT.Q4_1: [0, 2], QT.Q5_0: [0], QT.Q5_1: [0, 2], QT.Q8_0: [0],
    QT.Q2_K: [80, 82], QT.Q3_K: [108], QT.Q4_K: [0, 2], QT.Q5_K: [0, 2], QT.Q6_K: [208],
}
# gguf 0.19.0 quantizes these itself (the K-quants only dequantize).
QUANTIZABLE = {QT.F32, QT.F16, QT.BF16, QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1, QT.Q8_0}

# Tensor shapes in blocks: the last dimension counts blocks per row. The last shape has >= 65536
# elements for every block size, so that the dequantization takes its OpenMP path.
SHAPES_IN_BLOCKS = {
    1: [(1,), (7,), (5, 33), (3, 5, 17), (300, 513)],
    32: [(1,), (7,), (5, 3), (3, 5, 2), (130, 17)],
    256: [(1,), (5,), (5, 3), (3, 5, 2), (40, 7)],
}

TOOL_ENV = "GGUF_DEQUANT_BIN"


def _tool_path():
    if os.environ.get(TOOL_ENV):
        return os.environ[TOOL_ENV]
    bin_ = os.environ.get("LOGITLENS_BIN")
    if bin_:
        return os.path.join(os.path.dirname(os.path.abspath(bin_)), "tools", "gguf_dequant")
    return os.path.join(ROOT, "build", "tools", "gguf_dequant")


@pytest.fixture(scope="module")
def dequant_tool():
    path = _tool_path()
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} not found: build it with `make build/tools/gguf_dequant` (or set {TOOL_ENV})")
    return path


def run_tool(tool, tmp_path, qtype, raw):
    """Our dequantization of the raw block bytes, as a flat float32 array."""
    src, dst = tmp_path / "blocks.bin", tmp_path / "out.f32"
    src.write_bytes(np.ascontiguousarray(raw).tobytes())
    # 3 threads on any machine: an uneven split of the blocks among threads
    r = subprocess.run([tool, str(int(qtype)), str(src), str(dst)], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "OMP_NUM_THREADS": "3"})
    assert r.returncode == 0, f"{qtype.name}: gguf_dequant exited {r.returncode}: {r.stderr.strip()}"
    return np.fromfile(dst, dtype=np.float32)


def reference(raw, qtype):
    with np.errstate(all="ignore"):  # Inf * 0 and Inf - Inf in the fully random cases
        return np.ascontiguousarray(gguf.quants.dequantize(raw, qtype), dtype=np.float32)


def assert_bits_equal(ours, ref, what, nan_payloads=False):
    """Bit-for-bit equality; NaN positions must agree, and with nan_payloads their bits too."""
    ref = ref.ravel()
    assert ours.size == ref.size, f"{what}: {ours.size} elements out, the reference has {ref.size}"
    a, b = ours.view(np.uint32), ref.view(np.uint32)
    same = a == b
    if not nan_payloads:
        same |= np.isnan(ours) & np.isnan(ref)
    if not same.all():
        bad = np.flatnonzero(~same)
        i = bad[0]
        pytest.fail(f"{what}: {bad.size} of {ref.size} elements differ; first at {i}: "
                    f"ours {ours[i]!r} (0x{a[i]:08x}), gguf {ref[i]!r} (0x{b[i]:08x})")


def block_facts(qtype):
    return gguf.GGML_QUANT_SIZES[qtype]  # (elements, bytes) per block


def random_f16_finite(rng, size):
    """Random f16 bit patterns with every exponent but the Inf/NaN one: zeros, subnormals, both signs."""
    h = rng.integers(0, 1 << 16, size=size, dtype=np.uint16)
    exp = (h >> 10) & 0x1F
    return np.where(exp == 0x1F, h & np.uint16(0xBFFF), h).astype(np.uint16)  # exponent 31 -> 15


def set_scales(raw, qtype, values_u16):
    """Writes f16 bit patterns into every scale field of every block (raw: [..., n_blocks * bytes])."""
    _, ts = block_facts(qtype)
    blocks = raw.reshape(-1, ts)
    for k, off in enumerate(F16_SCALES[qtype]):
        blocks[:, off:off + 2] = values_u16[:, k].copy().view(np.uint8).reshape(-1, 2)


def make_blocks(qtype, shape_in_blocks, mode, rng):
    """Raw block bytes of the given kind, shape [..., blocks * bytes_per_block]."""
    bs, ts = block_facts(qtype)
    shape = (*shape_in_blocks[:-1], shape_in_blocks[-1] * bs)
    byte_shape = (*shape_in_blocks[:-1], shape_in_blocks[-1] * ts)
    n_blocks = int(np.prod(shape_in_blocks))
    if mode == "quantized":
        if qtype in QUANTIZABLE:
            # rows with different magnitudes, some blocks all zero, an outlier here and there
            x = rng.standard_normal(shape).astype(np.float32) * np.float32(rng.choice([1e-3, 0.05, 3.0]))
            x.reshape(-1)[:: max(1, x.size // 7)] *= np.float32(40.0)
            if x.size >= 2 * bs:
                x.reshape(-1, bs)[1] = 0.0
            return np.ascontiguousarray(gguf.quants.quantize(x, qtype)).view(np.uint8).reshape(byte_shape)
        raw = rng.integers(0, 256, size=byte_shape, dtype=np.uint8)
        mags = rng.uniform(1e-4, 2e-2, size=(n_blocks, len(F16_SCALES[qtype])))
        set_scales(raw, qtype, mags.astype(np.float16).view(np.uint16))
        return raw
    if mode == "random_finite_scales":
        if qtype in (QT.F32, QT.F16, QT.BF16):
            # random values of the type itself, no NaN or Inf
            if qtype == QT.F32:
                u = rng.integers(0, 1 << 32, size=shape, dtype=np.uint32)
                u = np.where((u & 0x7F800000) == 0x7F800000, u & np.uint32(0xBFFFFFFF), u).astype(np.uint32)
                return u.view(np.uint8).reshape(byte_shape)
            u = rng.integers(0, 1 << 16, size=shape, dtype=np.uint16)
            top = 0x7C00 if qtype == QT.F16 else 0x7F80
            u = np.where((u & top) == top, u & np.uint16(0xBFFF), u).astype(np.uint16)
            return u.view(np.uint8).reshape(byte_shape)
        raw = rng.integers(0, 256, size=byte_shape, dtype=np.uint8)
        scales = random_f16_finite(rng, (n_blocks, len(F16_SCALES[qtype])))
        # the extremes in the first blocks: largest finite, smallest subnormal, zero, -0
        extremes = np.array([0x7BFF, 0xFBFF, 0x0001, 0x8001, 0x0000, 0x8000], dtype=np.uint16)
        k = min(n_blocks, extremes.size)
        scales[:k, 0] = extremes[:k]
        set_scales(raw, qtype, scales)
        return raw
    assert mode == "random_bytes"
    return rng.integers(0, 256, size=byte_shape, dtype=np.uint8)


MODES = ["quantized", "random_finite_scales", "random_bytes"]
CASES = [(t, m, s) for t in SUPPORTED for m in MODES for s in SHAPES_IN_BLOCKS[block_facts(t)[0]]]


@pytest.mark.parametrize("qtype,mode,shape", CASES,
                         ids=[f"{t.name}-{m}-{'x'.join(map(str, s))}" for t, m, s in CASES])
def test_matches_gguf(dequant_tool, tmp_path, qtype, mode, shape):
    seed = [int(qtype), MODES.index(mode), *shape]
    rng = np.random.default_rng(seed)
    raw = make_blocks(qtype, shape, mode, rng)
    ref = reference(raw, qtype)
    bs, _ = block_facts(qtype)
    assert ref.shape == (*shape[:-1], shape[-1] * bs)
    if mode != "random_bytes":
        # finite inputs: the outputs are finite, so nothing below is hidden by the NaN rule
        assert np.isfinite(ref).all(), f"{qtype.name} {mode}: the test made non-finite inputs"
    ours = run_tool(dequant_tool, tmp_path, qtype, raw)
    assert_bits_equal(ours, ref, f"{qtype.name} {mode} blocks {shape}")


@pytest.mark.parametrize("qtype", [QT.F16, QT.BF16])
def test_every_16bit_pattern(dequant_tool, tmp_path, qtype):
    """All 65536 patterns in one tensor (OpenMP path), NaN payloads included, exactly."""
    raw = np.arange(1 << 16, dtype=np.uint16).view(np.uint8)
    ours = run_tool(dequant_tool, tmp_path, qtype, raw)
    assert_bits_equal(ours, reference(raw, qtype), f"{qtype.name} all patterns", nan_payloads=True)


def test_f32_patterns_with_nans(dequant_tool, tmp_path):
    rng = np.random.default_rng(32)
    u = rng.integers(0, 1 << 32, size=70001, dtype=np.uint32)
    u[::5] |= np.uint32(0x7F800000)  # Inf and NaNs with assorted payloads, signalling ones included
    raw = u.view(np.uint8)
    ours = run_tool(dequant_tool, tmp_path, QT.F32, raw)
    assert_bits_equal(ours, reference(raw, QT.F32), "F32 random patterns", nan_payloads=True)


def test_supported_set(dequant_tool):
    """ll_gguf_dequant_supported is 1 exactly for the 13 types, 0 for every other ggml id and beyond."""
    ids = sorted({int(t) for t in QT} | set(range(0, 48)) | {255, 1000, 2**31, 2**32 - 1})
    want = {int(t) for t in SUPPORTED}
    for i in ids:
        r = subprocess.run([dequant_tool, "--supported", str(i)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == ("1" if i in want else "0"), f"type id {i}: supported = {r.stdout.strip()}"


@pytest.mark.parametrize("qtype", [QT.Q8_1, QT.Q8_K, QT.IQ2_XXS, QT.TQ1_0, QT.MXFP4, 4, 5, 1000])
def test_unsupported_type_refused(dequant_tool, tmp_path, qtype):
    src, dst = tmp_path / "blocks.bin", tmp_path / "out.f32"
    src.write_bytes(bytes(512))
    r = subprocess.run([dequant_tool, str(int(qtype)), str(src), str(dst)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2
    assert f"type {int(qtype)} is not supported" in r.stderr
    assert not dst.exists()


def test_partial_block_refused(dequant_tool, tmp_path):
    src, dst = tmp_path / "blocks.bin", tmp_path / "out.f32"
    src.write_bytes(bytes(144 + 7))
    r = subprocess.run([dequant_tool, str(int(QT.Q4_K)), str(src), str(dst)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2
    assert "not a whole number of 144-byte blocks" in r.stderr
