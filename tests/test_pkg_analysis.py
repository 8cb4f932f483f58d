"""logitlens.analysis: layer numbers, "never", largest drops and reductions, against hand-computed answers."""
import numpy as np
import pytest

import logitlens
from test_pkg_files import write_file

# Points of a run with --points embed,mid,post --layers 0:6:2 (a model of 6 layers): the point index is
# NOT the layer, which is what these tests are about.
POINTS = ["embed", "mid.0", "post.0", "mid.2", "post.2", "mid.4", "post.4"]
LAYERS = [-1, 0, 0, 2, 2, 4, 4]


def test_first_layer_by_hand():
    ranks = np.array([[5, 3, 0, 1, 0, 0, 0],     # top-1 first at post.0 -> layer 0; stays from post.2 -> 2
                      [9, 9, 9, 9, 9, 9, 9],     # never
                      [0, 2, 2, 2, 2, 2, 0],     # top-1 at embed -> layer -1 (not "never"); stays at post.4
                      [-1, -1, -1, -1, -1, -1, -1],  # no target -> never
                      [4, 3, 2, 1, 1, 1, 1]])    # top-2 first at mid.2 -> layer 2, never top-1
    f1 = logitlens.first_layer(ranks, LAYERS, k=1, axis=1)
    np.testing.assert_array_equal(f1, [0.0, np.nan, -1.0, np.nan, np.nan])
    np.testing.assert_array_equal(logitlens.first_layer(ranks, LAYERS, k=2, axis=1), [0, np.nan, -1, np.nan, 2])
    np.testing.assert_array_equal(logitlens.first_layer(ranks, LAYERS, k=1, axis=1, stay=True),
                                  [2, np.nan, 4, np.nan, np.nan])
    np.testing.assert_array_equal(logitlens.first_point(ranks, k=1, axis=1), [2, -1, 0, -1, -1])
    # the point axis first ([point, position], as Prompt arrays) gives the same
    np.testing.assert_array_equal(logitlens.first_layer(ranks.T, LAYERS, k=1, axis=0), f1)


def test_largest_drop_layer_by_hand():
    ent = np.array([[5.0, 4.5, 4.0, 1.0, 0.9, 0.8, 0.5],   # largest drop 3.0 from post.0 to mid.2 -> 2
                    [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],   # only increases: the smallest increase (all 1) -> first
                    [np.nan] * 7,                          # nothing defined -> NaN
                    [6.0, 6.0, 6.0, 6.0, 6.0, 6.0, 0.0]])  # drop at post.4 -> 4
    np.testing.assert_array_equal(logitlens.largest_drop_layer(ent, LAYERS, axis=1), [2, 0, np.nan, 4])
    np.testing.assert_array_equal(logitlens.largest_drop_layer(ent[:, :1], LAYERS[:1], axis=1), [np.nan] * 4)


def test_run_helpers_and_summary(tmp_path):
    # 4 prompts of 2 tokens; the last position has no target (no explicit answer) except where target_ids
    # says so. Ranks and probabilities at position 0 (the one with a target) chosen by hand.
    n_pts = len(POINTS)
    lens = [2, 2, 2, 2]
    ranks = np.zeros((8, n_pts), int)
    ranks[0] = [3, 3, 0, 0, 0, 0, 0]    # prompt 0 pos 0: layer 0
    ranks[2] = [3, 3, 3, 3, 3, 1, 0]    # prompt 1 pos 0: layer 4
    ranks[4] = [3, 3, 3, 3, 3, 3, 3]    # prompt 2 pos 0: never
    ranks[6] = [0, 1, 1, 1, 1, 1, 1]    # prompt 3 pos 0: embed (-1), top-2 from mid.0 on
    probs = np.where(ranks == 0, 0.5, 0.125)
    ent = np.tile(np.array([4.0, 4.0, 3.0, 3.0, 1.0, 1.0, 1.0]), (8, 1))
    ent[::2] += np.arange(4)[:, None]      # position 0 of prompt i: + i
    tids = np.array([1, -1, 1, -1, 1, -1, 1, -1])
    path = write_file(tmp_path / "h.h5", lens, POINTS, LAYERS, 6, target_ranks=ranks, target_probs=probs,
                      entropy=ent, target_ids=tids)
    with logitlens.open(path) as run:
        np.testing.assert_array_equal(run.first_layer(k=1, position=0), [0, 4, np.nan, -1])
        np.testing.assert_array_equal(run.first_layer(k=2, position=0), [0, 4, np.nan, -1])
        np.testing.assert_array_equal(run.first_layer(k=1, position=-1), [np.nan] * 4)   # no targets
        np.testing.assert_array_equal(run.prompt(1).first_layer(), [4, np.nan])
        s = run.summary(position=0)
        assert s.attrs["n_with_target"] == 4
        np.testing.assert_allclose(s["target_prob"].sel(stat="mean").values,
                                   [0.875 / 4, 0.125] + [0.875 / 4] * 4 + [1.25 / 4])
        np.testing.assert_allclose(s["topk_hit"].sel(stat="mean").values, [0.25, 0, 0.25, 0.25, 0.25, 0.25, 0.5])
        np.testing.assert_allclose(s["target_rank"].sel(stat="median").values, [3, 3, 2, 2, 2, 1, 0.5])
        np.testing.assert_allclose(s["entropy"].sel(stat="mean").values, [5.5, 5.5, 4.5, 4.5, 2.5, 2.5, 2.5])
        np.testing.assert_allclose(s["entropy"].sel(stat="std").values, [np.std([0, 1, 2, 3])] * 7)
        np.testing.assert_array_equal(s["entropy"].sel(stat="count").values, [4] * 7)
        np.testing.assert_allclose(s["depth"].values, [0, 0.5 / 6, 1 / 6, 2.5 / 6, 3 / 6, 4.5 / 6, 5 / 6])
        assert list(s["layer"].values) == LAYERS
        # at the last position no prompt has a target: counts 0 and NaN, not errors
        s1 = run.summary(position=-1)
        assert s1.attrs["n_with_target"] == 0
        assert np.isnan(s1["target_prob"].sel(stat="mean").values).all()
        assert (s1["target_prob"].sel(stat="count").values == 0).all()
        # entropy drop of prompt 0 at position 0: 4,4,3,3,1,1,1 -> largest drop post.2 -> layer 2
        p0 = run.prompt(0)
        assert logitlens.largest_drop_layer(p0.entropy, p0.layers, axis=0)[0] == 2


def test_point_depths():
    d = logitlens.point_depths(["embed", "mid.0", "post.0", "post.11"], [-1, 0, 0, 11], 12)
    np.testing.assert_allclose(d, [0, 0.5 / 12, 1 / 12, 1.0])
    with pytest.raises(AttributeError):
        logitlens.no_such_thing
