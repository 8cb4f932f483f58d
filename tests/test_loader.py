"""The Python loader (tools/python/logitlens) on the files of tests/test_h5_format.py."""
import h5py
import numpy as np
import pytest

import logitlens
from test_h5_format import D, LAYERS, POINTS, PROBS_VOCAB, PROMPT_LEN, bare_file, expected, logitlens_bin, \
    run_file, vocab, writer_bin  # noqa: F401 (fixtures)


def test_run_metadata(run_file):
    with logitlens.open(run_file) as run:
        assert len(run) == run.n_prompts == len(PROMPT_LEN)
        assert run.n_tokens == sum(PROMPT_LEN) and run.topk == 4
        assert run.points == POINTS and list(run.point_layers) == LAYERS
        assert run.vocab == vocab()
        assert run.attrs["format"] == "logitlens.lens" and run.attrs["d_model"] == D
        assert isinstance(run.attrs["d_model"], int)
        assert run.attrs["safetensors_header_sha256"] == ["aa11", "bb22"]
        np.testing.assert_array_equal(run.prompt_offsets, expected()["prompt_offsets"])


def test_prompt_arrays_are_point_major(run_file):
    exp = expected()
    voc = vocab()
    with logitlens.open(run_file) as run:
        for i, p in enumerate(run):
            lo, hi = exp["prompt_offsets"][i], exp["prompt_offsets"][i + 1]
            assert p.index == i and len(p) == PROMPT_LEN[i] and p.offset == lo
            assert p.text == exp["prompts"][i] and p.target_text == exp["prompt_targets"][i]
            np.testing.assert_array_equal(p.tokens, exp["tokens"][lo:hi])
            np.testing.assert_array_equal(p.target_ids, exp["target_ids"][lo:hi])
            for name in ("topk_ids", "topk_probs", "entropy", "kl_final", "target_probs", "target_logprobs",
                         "target_ranks", "hidden"):
                np.testing.assert_array_equal(getattr(p, name), np.moveaxis(exp[name][lo:hi], 0, 1), err_msg=name)
            assert p.topk_ids.shape == (len(POINTS), PROMPT_LEN[i], 4)
            assert p.token_strings == [voc[t] for t in exp["tokens"][lo:hi]]
            assert p.topk_strings[2, -1, 0] == voc[exp["topk_ids"][hi - 1, 2, 0]]
            rows = [r for r, t in enumerate(exp["probs_token_index"]) if lo <= t < hi]
            np.testing.assert_array_equal(p.probs_positions, exp["probs_token_index"][rows] - lo)
            np.testing.assert_array_equal(p.probs, np.moveaxis(exp["probs"][rows], 0, 1))
            np.testing.assert_array_equal(p.probs_vocab, PROBS_VOCAB)
            assert p.probs.dtype == np.float16 and p.probs.shape == (len(POINTS), len(rows), len(PROBS_VOCAB))


def test_indexing_and_close(run_file):
    run = logitlens.open(run_file)
    assert run.prompt(-1).index == len(PROMPT_LEN) - 1 and run[2].index == 2
    with pytest.raises(IndexError, match="6 prompts"):
        run.prompt(6)
    assert run.prompt(2).position(-1) == 16
    with pytest.raises(IndexError):
        run.prompt(2).position(17)
    with run:
        pass
    assert not run.file.id.valid


def test_without_optional_data(bare_file):
    with logitlens.open(bare_file) as run:
        assert run.vocab is None and run.probs_vocab_index is None
        p = run.prompt(0)
        assert p.hidden is None and p.probs is None
        assert p.token_strings[0] == f"#{expected()['tokens'][0]}"
        ds = run.to_xarray()
        assert "probs" not in ds and "hidden" not in ds


def test_to_xarray(run_file):
    exp = expected()
    with logitlens.open(run_file) as run:
        ds = run.to_xarray()
    assert ds["topk_probs"].dims == ("token", "point", "k")
    assert ds["probs"].dims == ("probs_row", "point", "probs_vocab")
    assert ds["hidden"].dims == ("token", "point", "hidden_dim")
    assert list(ds["point"].values) == POINTS and list(ds["point_layer"].values) == LAYERS
    np.testing.assert_array_equal(ds["token_id"].values, exp["tokens"])
    np.testing.assert_array_equal(ds["prompt_index"].values, exp["token_prompt"])
    np.testing.assert_array_equal(ds["position"].values, exp["token_position"])
    np.testing.assert_array_equal(ds["probs_vocab"].values, PROBS_VOCAB)
    np.testing.assert_array_equal(ds["probs_token_index"].values, exp["probs_token_index"])
    np.testing.assert_array_equal(ds["entropy"].sel(point="post.0").values, exp["entropy"][:, 2])
    assert ds.attrs["architecture"] == "gpt2"
    # one prompt: its tokens and only its saved probability rows (not probs broadcast over tokens)
    one = logitlens.select_prompt(ds, 2)
    lo = exp["prompt_offsets"][2]
    assert one.sizes["token"] == PROMPT_LEN[2] and one["target_ranks"].dtype == np.int32
    rows = [r for r, t in enumerate(exp["probs_token_index"]) if lo <= t < lo + PROMPT_LEN[2]]
    assert one["probs"].dims == ("probs_row", "point", "probs_vocab")
    np.testing.assert_array_equal(one["probs"].values, exp["probs"][rows])
    np.testing.assert_array_equal(one["probs_position"].values, exp["probs_token_index"][rows] - lo)


def test_to_xarray_lazy(run_file):
    exp = expected()
    with logitlens.open(run_file) as run:
        ds = run.to_xarray(lazy=True, hidden=False)
        try:
            assert "hidden" not in ds and ds["topk_probs"].dims == ("token", "point", "k")
            np.testing.assert_array_equal(ds["entropy"].sel(point="post.0").values, exp["entropy"][:, 2])
            np.testing.assert_array_equal(ds["target_ranks"].sel(point="mid.1").values, exp["target_ranks"][:, 3])
            assert ds["target_ranks"].dtype == np.int32 and list(ds["point_layer"].values) == LAYERS
            np.testing.assert_array_equal(ds["prompt_index"].values, exp["token_prompt"])
            one = logitlens.select_prompt(ds, 1)
            np.testing.assert_array_equal(one["tokens"].values, exp["tokens"][3:8])
        finally:
            ds.close()


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        logitlens.open(tmp_path / "missing.h5")
    txt = tmp_path / "notes.h5"
    txt.write_text("not hdf5")
    with pytest.raises(logitlens.FormatError, match="not an HDF5 file"):
        logitlens.open(txt)
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f.attrs["format"] = "something.else"
    with pytest.raises(logitlens.FormatError, match="something.else"):
        logitlens.open(plain)
    newer = tmp_path / "newer.h5"
    with h5py.File(newer, "w") as f:
        f.attrs["format"] = "logitlens.lens"
        f.attrs["format_version"] = np.int32(logitlens.FORMAT_VERSION + 1)
    with pytest.raises(logitlens.FormatError, match="unsupported format_version 2.*newer"):
        logitlens.open(newer)
