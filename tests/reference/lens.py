"""Logit-lens statistics in float64 by brute force: the full logit vector of every row, softmax over the
whole vocabulary, and each statistic straight from its definition (no online log-sum-exp, no KL
identity), so that it checks the engine's one-pass formulas rather than repeating them."""

import numpy as np


def log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    s = z - m
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def targets_for(prompt_tokens, answer_id=None):
    """Target of each position: the next prompt token; at the last position the explicit answer's first
    token (answer_id) or -1."""
    t = list(prompt_tokens[1:]) + [(-1 if answer_id is None else int(answer_id))]
    return np.asarray(t, dtype=np.int64)


def lens_stats(model, hidden, final_logits, targets, k):
    """hidden: dict point -> [T, d] (one prompt); final_logits [T, V]; targets [T] (-1 none); k top-k.

    Returns dict of arrays with the point axis second, as the result file lays them out:
      logits [T, P, V], logp [T, P, V], probs [T, P, V], topk_ids [T, P, k], topk_probs [T, P, k],
      entropy [T, P], kl_final [T, P], target_logprobs/target_probs [T, P] (NaN without target),
      target_ranks [T, P] (-1 without target), final_probs [T, V]; and points (list of names)."""
    points = list(hidden.keys())
    r = lens_of_rows(model, np.stack([hidden[p] for p in points], axis=1), final_logits, targets, k)
    r["points"] = points
    return r


def lens_of_rows(model, H, final_logits, targets, k):
    """The statistics of lens_stats for residual rows H [T, P, d] (any rows: the reference's own or an
    engine's saved hidden states, to separate lens arithmetic from forward-pass error)."""
    z = model.logits_of(H)                             # [T, P, V]
    logp = log_softmax(z)
    p = np.exp(logp)
    ent = -(p * logp).sum(axis=-1)
    logp_f = log_softmax(final_logits)[:, None, :]     # [T, 1, V]
    p_f = np.exp(logp_f)
    kl = (p_f * (logp_f - logp)).sum(axis=-1)
    # stable sort on -z: equal logits keep ascending ids (the file's tie rule: smaller id first)
    order = np.argsort(-z, axis=-1, kind="stable")[..., :k]
    topk_p = np.take_along_axis(p, order, axis=-1)
    T, P, V = z.shape
    tl = np.full((T, P), np.nan)
    tr = np.full((T, P), -1, dtype=np.int64)
    for t in range(T):
        tg = int(targets[t])
        if tg < 0:
            continue
        tl[t] = logp[t, :, tg]
        tr[t] = (z[t] > z[t, :, tg][:, None]).sum(axis=-1)
    return {
        "logits": z, "logp": logp, "probs": p,
        "topk_ids": order, "topk_probs": topk_p, "entropy": ent, "kl_final": kl,
        "target_logprobs": tl, "target_probs": np.exp(tl), "target_ranks": tr,
        "final_probs": p_f[:, 0, :], "final_logits": np.asarray(final_logits, dtype=np.float64),
    }


def run_reference(model, prompts, answers, k):
    """prompts: list of token lists; answers: list of answer ids or None. Returns the per-prompt
    results concatenated on the token axis (packed, as the result file), plus `hidden` [N, P, d] with
    every point of the model in depth order."""
    parts = []
    for toks, ans in zip(prompts, answers):
        hid, logits = model.forward(toks)
        tg = targets_for(toks, ans)
        r = lens_stats(model, hid, logits, tg, k)
        r["hidden"] = np.stack([hid[p] for p in r["points"]], axis=1)
        r["target_ids"] = tg
        r["final_logits"] = logits
        parts.append(r)
    out = {"points": parts[0]["points"]}
    for key in parts[0]:
        if key == "points":
            continue
        out[key] = np.concatenate([r[key] for r in parts], axis=0)
    return out
