"""Small result files written by hand (h5py) for the package tests, and the bulk loader on them.

`write_file` writes a file with the datasets and attributes of docs/hdf5-format.md that the package
reads, the values given by the test (so that every expected answer can be computed by hand), chunked
and compressed along the token axis as the engine does.
"""
import numpy as np
import pytest

import logitlens


def write_file(path, prompt_lens, points, point_layers, n_layers, target_ranks=None, target_probs=None,
               entropy=None, kl_final=None, target_ids=None, topk=3, vocab_size=12, vocab=True, chunk_rows=4,
               seed=0):
    """Writes a result file. Per-token arrays are [token, point] (all prompts packed); what is not given
    is filled deterministically. Returns the path."""
    import h5py

    rng = np.random.default_rng(seed)
    lens = np.asarray(prompt_lens)
    n, P = int(lens.sum()), len(points)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    tprompt = np.repeat(np.arange(len(lens)), lens).astype(np.int32)
    tpos = (np.arange(n) - offsets[tprompt]).astype(np.int32)
    tokens = rng.integers(0, vocab_size, n).astype(np.int32)
    if target_ids is None:
        target_ids = np.where(tpos < lens[tprompt] - 1, np.roll(tokens, -1), -1).astype(np.int32)
    target_ids = np.asarray(target_ids, np.int32)
    has = (target_ids >= 0)[:, None]
    if target_ranks is None:
        target_ranks = rng.integers(0, 5, (n, P))
    target_ranks = np.where(has, np.asarray(target_ranks), -1).astype(np.int32)
    if target_probs is None:
        target_probs = 1.0 / (2.0 + np.asarray(target_ranks, np.float64))
    target_probs = np.where(has, np.asarray(target_probs, np.float64), np.nan).astype(np.float32)
    entropy = (rng.random((n, P)) * 3 if entropy is None else np.asarray(entropy)).astype(np.float32)
    kl_final = (rng.random((n, P)) * 5 if kl_final is None else np.asarray(kl_final)).astype(np.float32)
    topk_ids = rng.integers(0, vocab_size, (n, P, topk)).astype(np.int32)
    topk_probs = np.sort(rng.random((n, P, topk)).astype(np.float32), axis=2)[:, :, ::-1] / topk
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "logitlens.lens"
        f.attrs["format_version"] = np.int32(1)
        f.attrs["n_layers"] = np.int64(n_layers)
        f.attrs["topk"] = np.int64(topk)
        f.attrs["architecture"] = "gpt2"
        s = h5py.string_dtype("utf-8")

        def tok(name, a):
            f.create_dataset(name, data=a, chunks=(chunk_rows,) + a.shape[1:], maxshape=(None,) + a.shape[1:],
                             compression="gzip", compression_opts=4, shuffle=True)

        for name, a in (("tokens", tokens), ("token_prompt", tprompt), ("token_position", tpos),
                        ("topk_ids", topk_ids), ("topk_probs", np.ascontiguousarray(topk_probs)),
                        ("entropy", entropy), ("kl_final", kl_final), ("target_ids", target_ids),
                        ("target_probs", target_probs), ("target_logprobs", np.log(target_probs)),
                        ("target_ranks", target_ranks)):
            tok(name, a)
        f.create_dataset("prompt_offsets", data=offsets)
        f.create_dataset("prompts", data=[f"prompt {i}" for i in range(len(lens))], dtype=s)
        f.create_dataset("prompt_targets", data=["" for _ in lens], dtype=s)
        f.create_dataset("points", data=list(points), dtype=s)
        f.create_dataset("point_layers", data=np.asarray(point_layers, np.int32))
        if vocab:
            f.create_dataset("vocab", data=[f"t{i}" for i in range(vocab_size)], dtype=s)
    return path


@pytest.fixture
def many(tmp_path):
    lens = [(i * 7) % 5 + 1 for i in range(40)]
    pts = ["embed", "post.0", "post.1", "post.2"]
    return write_file(tmp_path / "many.h5", lens, pts, [-1, 0, 1, 2], 3, chunk_rows=8), lens


def test_prompts_in_bulk_equal_one_by_one(many):
    path, lens = many
    with logitlens.open(path) as run:
        f = run.file
        bulk = run.prompts([5, 0, 39, 5, -1])
        assert [p.index for p in bulk] == [5, 0, 39, 5, 39]
        for p in bulk:
            lo = int(run.prompt_offsets[p.index])
            hi = lo + lens[p.index]
            for name in ("tokens", "target_ids", "topk_ids", "topk_probs", "entropy", "target_ranks"):
                want = f[name][lo:hi]
                want = np.moveaxis(want, 0, 1) if want.ndim > 1 else want
                got = getattr(p, name)
                assert got.dtype == want.dtype, name
                np.testing.assert_array_equal(got, want, err_msg=name)
        assert [p.index for p in run] == list(range(40))
        assert len(run.prompts(slice(10, 20))) == 10 and run.prompts([]) == []
        with pytest.raises(IndexError, match="40 prompts"):
            run.prompts([0, 40])


def test_at_position_vectorized(many):
    path, lens = many
    with logitlens.open(path) as run:
        f = run.file
        ds = run.at_position(-1)
        last = run.prompt_offsets[1:] - 1
        assert ds["topk_ids"].dims == ("prompt", "point", "k") and ds["entropy"].dims == ("prompt", "point")
        np.testing.assert_array_equal(ds["topk_ids"].values, f["topk_ids"][()][last])
        np.testing.assert_array_equal(ds["target_ranks"].values, f["target_ranks"][()][last])
        assert ds["target_ranks"].dtype == np.int32 and ds["tokens"].dtype == np.int32
        assert list(ds["position"].values) == [n - 1 for n in lens]
        # position 3 exists only in prompts of 4+ tokens: the others are invalid, -1 / NaN, dtypes kept
        ds3 = run.at_position(3, prompts=[0, 1, 2, 3])
        want_valid = [lens[i] > 3 for i in range(4)]
        assert list(ds3["valid"].values) == want_valid
        for i in range(4):
            if want_valid[i]:
                g = run.prompt_offsets[i] + 3
                np.testing.assert_array_equal(ds3["entropy"].values[i], f["entropy"][g])
            else:
                assert (ds3["target_ranks"].values[i] == -1).all() and np.isnan(ds3["entropy"].values[i]).all()
        assert ds3["target_ranks"].dtype == np.int32
        assert float(ds["entropy"].sel(point="post.1", prompt=7)) == f["entropy"][last[7], 2]
        np.testing.assert_allclose(ds["depth"].values, [0, 1 / 3, 2 / 3, 1])


def test_to_xarray_point_names_and_select_prompt(many):
    path, lens = many
    with logitlens.open(path) as run:
        ds = run.to_xarray()
        one = logitlens.select_prompt(ds, 3)
        assert one.sizes["token"] == lens[3] and one["target_ranks"].dtype == np.int32
        np.testing.assert_array_equal(ds["entropy"].sel(point="post.2").values, run.file["entropy"][:, 3])
        assert list(ds["depth"].values) == pytest.approx([0, 1 / 3, 2 / 3, 1])
