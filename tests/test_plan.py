"""`logitlens plan`: the tensor x pipeline split of a model over a cluster, from config.json alone.

The shipped configs (configs/models/) plan without weights: Llama-3-70B fits 8 x 80 GiB and not 1 x 80 GiB
(exit 5); a split the model refuses is one line and exit 2; --json parses and its per-rank weights equal the
bytes of the sharded tensors computed here from config.json by the rules of include/ll_shard.h (an
independent reference written out in Python); a synthetic model from `logitlens synth` plans too."""
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "configs", "models")
SHIPPED = ["llama-3-8b", "llama-3-70b", "qwen2-72b", "mistral-7b-v0.1", "pythia-12b"]
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


def model(name):
    return os.path.join(MODELS, name)


def plan_json(ll, args):
    r = ll.run(["plan"] + list(args) + ["--json"])
    assert r.rc in (0, 5), r.describe()
    return r, json.loads(r.stdout)


def llama_rank_weight_bytes(cfg, tp, pp, rank):
    """Bytes of the tensors world rank `rank` holds (llama family without biases): the query heads, the KV
    heads (split, or the one shared head when there are fewer than tp), the MLP columns and rows of its
    tensor-parallel slot, whole norms, the layers of its stage, the embedding on the first stage and the
    unembedding rows [r V / tp, (r + 1) V / tp) on every stage."""
    d, V, L = cfg["hidden_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", H)
    hd = cfg.get("head_dim", d // H)
    F = cfg["intermediate_size"]
    tied = cfg.get("tie_word_embeddings", False)
    t, s = rank % tp, rank // tp
    heads = H // tp
    kv = KV // tp if KV % tp == 0 else 1
    ff = F // tp
    n_v = (t + 1) * V // tp - t * V // tp
    layers = (s + 1) * L // pp - s * L // pp
    per_layer = (d  # input_layernorm
                 + heads * hd * d  # q_proj rows of this rank's heads
                 + 2 * kv * hd * d  # k_proj, v_proj
                 + d * heads * hd  # o_proj columns of the same heads
                 + d  # post_attention_layernorm
                 + 2 * ff * d  # gate_proj, up_proj rows
                 + d * ff)  # down_proj columns
    n = layers * per_layer + d  # + the final norm, on every stage
    if s == 0:
        n += V * d  # the token embedding, whole
    if not tied:
        n += n_v * d  # lm_head rows
    elif s != 0:
        n += n_v * d  # tied: the embedding's rows of this rank's slice
    return n * DTYPE_BYTES[cfg.get("torch_dtype", "bfloat16")]


def test_llama3_70b_fits_8x80_and_not_1x80(ll):
    r = ll.run(["plan", "--model", model("llama-3-70b"), "--gpus", "8", "--gpu-mem", "80"])
    assert r.rc == 0, r.describe()
    assert "chosen    --tp" in r.stdout and "srun -N 1 --ntasks-per-node=8" in r.stdout, r.stdout
    assert "--kill-on-bad-exit=1" in r.stdout
    # every split of 8 ranks is in the table
    for tp, pp in [(1, 8), (2, 4), (4, 2), (8, 1)]:
        assert any(line.split()[:2] == [str(tp), str(pp)] for line in r.stdout.splitlines()), r.stdout

    r = ll.run(["plan", "--model", model("llama-3-70b"), "--gpus", "1", "--gpu-mem", "80"])
    assert r.rc == 5, r.describe()
    msg = r.stderr.strip()
    assert len(msg.splitlines()) == 1 and "does not fit" in msg, msg
    assert "nothing fits" in r.stdout


def test_json_chooses_a_split_that_fits(ll):
    r, j = plan_json(ll, ["--model", model("llama-3-70b"), "--gpus", "8", "--gpu-mem", "80"])
    assert r.rc == 0 and j["fits"] and j["chosen"], j
    ch = [s for s in j["splits"] if s["tp"] == j["chosen"]["tp"] and s["pp"] == j["chosen"]["pp"]]
    assert len(ch) == 1 and ch[0]["fits"] and ch[0]["total_bytes"] <= 80 * 2**30, ch
    fitting = [s for s in j["splits"] if s["fits"]]
    assert ch[0]["tokens_per_s"] == max(s["tokens_per_s"] for s in fitting)
    assert "--tp %d --pp %d" % (ch[0]["tp"], ch[0]["pp"]) in j["chosen"]["launch"]
    for s in j["splits"]:
        assert s["tp"] * s["pp"] == 8
        if s["valid"]:
            assert len(s["ranks"]) == 8
            assert s["total_bytes"] == max(k["total_bytes"] for k in s["ranks"])
            assert s["total_bytes"] == s["weights_bytes"] + s["activation_bytes"] + s["scratch_bytes"]
            assert 0 <= s["bubble"] < 1 and s["batch_s"] > 0

    r, j = plan_json(ll, ["--model", model("llama-3-70b"), "--gpus", "1"])
    assert r.rc == 5 and not j["fits"] and j["chosen"] is None and j["reason"], j


@pytest.mark.parametrize("name,tp,pp", [("llama-3-70b", 8, 1), ("llama-3-8b", 2, 4), ("mistral-7b-v0.1", 4, 2)])
def test_json_weights_equal_the_sharded_tensors(ll, name, tp, pp):
    with open(os.path.join(model(name), "config.json")) as f:
        cfg = json.load(f)
    r, j = plan_json(ll, ["--model", model(name), "--tp", str(tp), "--pp", str(pp), "--gpus", str(tp * pp)])
    assert len(j["splits"]) == 1 and j["splits"][0]["valid"], j
    ranks = j["splits"][0]["ranks"]
    assert [k["rank"] for k in ranks] == list(range(tp * pp))
    for k in ranks:
        assert k["weights_bytes"] == llama_rank_weight_bytes(cfg, tp, pp, k["rank"]), k


def test_given_split_refused_by_the_model(ll):
    r = ll.run(["plan", "--model", model("llama-3-70b"), "--tp", "3"])
    assert r.rc == 2, r.describe()
    msg = r.stderr.strip()
    assert len(msg.splitlines()) == 1 and "--tp 3" in msg and "64 attention heads" in msg, msg
    assert r.stdout == ""
    # a tensor-parallel group may not span nodes
    r = ll.run(["plan", "--model", model("llama-3-70b"), "--tp", "16", "--nodes", "2"])
    assert r.rc == 2 and "within a node" in r.stderr, r.describe()
    # --tp x --pp must use every rank
    r = ll.run(["plan", "--model", model("llama-3-70b"), "--tp", "4", "--pp", "4"])
    assert r.rc == 2 and "--tp x --pp" in r.stderr, r.describe()


def test_two_nodes_list_the_split_spanning_nodes_as_invalid(ll):
    r, j = plan_json(ll, ["--model", model("llama-3-70b"), "--gpus", "8", "--nodes", "2"])
    assert r.rc == 0, r.describe()
    tp16 = [s for s in j["splits"] if s["tp"] == 16]
    assert len(tp16) == 1 and not tp16[0]["valid"] and "node" in tp16[0]["reason"], tp16
    assert j["chosen"]["tp"] <= 8 and "srun -N 2 --ntasks-per-node=8" in j["chosen"]["launch"]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_plans(ll, name):
    r = ll.run(["plan", "--model", model(name)])
    assert r.rc == 0, r.describe()
    r = ll.run(["plan", "--model", os.path.join(model(name), "config.json"), "--json"])
    assert r.rc == 0, r.describe()
    j = json.loads(r.stdout)
    with open(os.path.join(model(name), "config.json")) as f:
        cfg = json.load(f)
    assert j["layers"] == cfg["num_hidden_layers"]
    assert j["dtype"] == {"bfloat16": "bf16", "float16": "f16", "float32": "f32"}[cfg["torch_dtype"]]


@pytest.mark.parametrize("tied", [0, 1])
def test_synthetic_model(ll, tied):
    d = ll.synth(arch="llama", layers=4, d_model=48, heads=4, kv_heads=2, vocab=301, ctx=32, tied=tied)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    assert cfg.get("tie_word_embeddings", False) == bool(tied)
    r, j = plan_json(ll, ["--model", d, "--gpus", "4", "--gpu-mem", "1", "--batch-tokens", "256",
                          "--points", "embed,mid,post"])
    assert r.rc == 0 and j["fits"], r.describe()
    assert j["points"] == 1 + 2 * 4 and j["dtype"] == "f32"
    for s in j["splits"]:
        assert s["valid"], s  # 4 heads, 2 KV heads (replicated at tp 4), 4 layers: every split of 4 applies
        for k in s["ranks"]:
            assert k["weights_bytes"] == llama_rank_weight_bytes(cfg, s["tp"], s["pp"], k["rank"]), (s["tp"], k)
    # the same model on 8 GPUs: --tp 8 does not divide its 4 heads and --pp 8 is more than its 4 layers
    r, j = plan_json(ll, ["--model", d, "--gpus", "8"])
    assert r.rc == 0 and [(s["tp"], s["pp"]) for s in j["splits"] if not s["valid"]] == [(1, 8), (8, 1)], j


@pytest.mark.parametrize("args,needle", [
    (["--gpus", "0"], "--gpus"),
    (["--gpu-mem", "-1"], "--gpu-mem"),
    (["--gpu-mem", "lots"], "--gpu-mem"),
    (["--dtype", "f8"], "--dtype"),
    (["--batch-tokens", "0"], "--batch-tokens"),
    (["--network", "0"], "--network"),
    (["--points", "embed,nope"], "nope"),
    (["--layers", "5:2"], "5:2"),
    (["--frobnicate"], "--frobnicate"),
])
def test_bad_options(ll, args, needle):
    r = ll.run(["plan", "--model", model("llama-3-8b")] + args)
    assert r.rc == 2, r.describe()
    msg = r.stderr.strip()
    assert len(msg.splitlines()) == 1 and needle in msg, msg


def test_bad_config(ll, tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama", "hidden_size": ')
    r = ll.run(["plan", "--model", str(tmp_path)])
    assert r.rc == 3, r.describe()
    assert len(r.stderr.strip().splitlines()) == 1 and "config.json" in r.stderr, r.stderr
    r = ll.run(["plan", "--model", str(tmp_path / "missing")])
    assert r.rc == 3 and len(r.stderr.strip().splitlines()) == 1, r.describe()
    r = ll.run(["plan"])
    assert r.rc == 2 and "model" in r.stderr, r.describe()


def test_no_valid_split(ll):
    d = ll.synth(arch="llama", layers=4, d_model=48, heads=4, kv_heads=2, vocab=301, ctx=32)
    # 5 ranks: --tp 5 does not divide 4 heads, --pp 5 is more than 4 layers
    r = ll.run(["plan", "--model", d, "--gpus", "5"])
    assert r.rc == 2, r.describe()
    msg = r.stderr.strip()
    assert len(msg.splitlines()) == 1 and "no split of 5 ranks" in msg, msg
    assert "invalid" in r.stdout


def test_help(ll):
    r = ll.run(["plan", "--help"])
    assert r.rc == 0 and "usage: logitlens plan" in r.stdout, r.describe()
    r = ll.run(["--help"])
    assert r.rc == 0 and "  plan " in r.stdout, r.describe()
