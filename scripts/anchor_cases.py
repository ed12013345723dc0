#!/usr/bin/env python3
"""Known-answer cases for grpo-core's anchor-named functions (`compat`).

Computes, with torch in float64 and torch autograd for every gradient, what
verl (volcengine/verl @ b178a3cd, `verl/trainer/ppo/core_algos.py`,
`verl/utils/torch_functional.py`, `verl/utils/groupwise.py`) and TRL 1.16.0
(`GRPOTrainer._compute_loss`) compute, written out here from those sources'
semantics (same operations, same order, same clamps and epsilons), and writes
one JSON object per case:

    {"case": ..., "fn": ..., "params": {...}, "inputs": {...}, "expected": {...}}

to grpo-core/tests/data/compat_anchor_cases.jsonl. The Rust test
`tests/it/compat_anchor.rs` feeds each line (minus `expected`) to
`compat::eval` and compares within 1e-6.

Run: /work/pyenv/bin/python scripts/anchor_cases.py   (needs numpy + torch)

Cross-check of the written-out formulas against the anchors' own code (nothing
of it is copied here; it is loaded from the paths given at run time):

    python scripts/anchor_cases.py --verl-src /path/to/verl-checkout \
                                   --trl-src /path/to/unpacked/trl-1.16.0-wheel

runs verl's `core_algos` functions (imports stubbed) and TRL's
`GRPOTrainer._compute_loss` (extracted with `ast`, run on a stub trainer) on
every case of the JSONL and reports mismatches. At verl @ b178a3cd and
trl==1.16.0 all cases agree except verl's `k*+` KL names, which raise
`NotImplementedError` in verl (documented in grpo-core's `compat` docs).
"""

import json
import math
import os
from collections import defaultdict

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(__file__), "..", "grpo-core", "tests", "data", "compat_anchor_cases.jsonl")
RNG = np.random.default_rng(20261126)
CASES = []


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def lst(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().tolist()
    return x


def add(case, fn, params, inputs, expected):
    CASES.append(
        {
            "case": case,
            "fn": fn,
            "params": params,
            "inputs": {k: lst(v) for k, v in inputs.items()},
            "expected": {k: lst(v) for k, v in expected.items()},
        }
    )


# ----------------------------------------------------------------- verl utils


def masked_sum(v, m, axis=None):
    valid = torch.where(m.bool(), v, torch.zeros_like(v))
    return (valid * m).sum() if axis is None else (valid * m).sum(dim=axis)


def masked_mean(v, m):
    return masked_sum(v, m) / (m.sum() + 1e-8)


def masked_var(v, m):
    mean = masked_mean(v, m)
    var = masked_mean((v - mean) ** 2, m)
    n = m.sum()
    assert n > 1
    return var * (n / (n - 1))


def masked_whiten(v, m, shift_mean=True):
    mean, var = masked_mean(v, m), masked_var(v, m)
    w = (v - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        w = w + mean
    return w


def agg_loss(loss_mat, loss_mask, mode, dp_size=1, batch_num_tokens=None, global_batch_size=None, loss_scale_factor=None):
    if mode == "token-mean":
        n = loss_mask.sum() if batch_num_tokens is None else batch_num_tokens
        return masked_sum(loss_mat, loss_mask) / n * dp_size
    if mode == "seq-mean-token-sum":
        seq = torch.sum(loss_mat * loss_mask, dim=-1)
        seq_mask = (loss_mask.sum(-1) > 0).double()
        g = seq_mask.sum() if global_batch_size is None else global_batch_size
        return masked_sum(seq, seq_mask) / g * dp_size
    if mode == "seq-mean-token-mean":
        cnt = loss_mask.sum(-1)
        seq = torch.sum(loss_mat * loss_mask, dim=-1) / (cnt + 1e-8)
        seq_mask = (cnt > 0).double()
        g = seq_mask.sum() if global_batch_size is None else global_batch_size
        return masked_sum(seq, seq_mask) / g * dp_size
    if mode == "seq-mean-token-sum-norm":
        seq = torch.sum(loss_mat * loss_mask, dim=-1)
        c = loss_mask.shape[-1] if loss_scale_factor is None else loss_scale_factor
        return seq.sum() / c
    raise ValueError(mode)


GLOBAL_KEYS = ("dp_size", "batch_num_tokens", "global_batch_size", "loss_scale_factor")


def gbi(p):
    return {k: p[k] for k in GLOBAL_KEYS if k in p}


# ----------------------------------------------------------------- verl advantages


def grpo_loop(r, m, index, epsilon=1e-6, norm_adv_by_std_in_grpo=True):
    scores = r.sum(-1).clone()
    groups = defaultdict(list)
    for i in range(len(index)):
        groups[index[i]].append(scores[i])
    mean, std = {}, {}
    for k, v in groups.items():
        if len(v) == 1:
            mean[k], std[k] = t(0.0), t(1.0)
        else:
            s = torch.stack(v)
            mean[k], std[k] = s.mean(), s.std()
    for i in range(len(index)):
        if norm_adv_by_std_in_grpo:
            scores[i] = (scores[i] - mean[index[i]]) / (std[index[i]] + epsilon)
        else:
            scores[i] = scores[i] - mean[index[i]]
    a = scores.unsqueeze(-1) * m
    return a, a


def grpo_vectorized(r, m, index, epsilon=1e-6, norm_adv_by_std_in_grpo=True):
    scores = r.sum(-1)
    _, inv = np.unique(np.array([str(x) for x in index], dtype=object), return_inverse=True)
    g = torch.from_numpy(inv.astype(np.int64))
    s32 = scores.to(torch.float32)
    G = int(g.max()) + 1
    cnt = torch.zeros(G, dtype=torch.float32).index_add_(0, g, torch.ones_like(s32))
    s1 = torch.zeros(G, dtype=torch.float32).index_add_(0, g, s32)
    s2 = torch.zeros(G, dtype=torch.float32).index_add_(0, g, s32 * s32)
    mean = s1 / cnt.clamp_min(1.0)
    var = (s2 - s1 * s1 / cnt.clamp_min(1.0)) / (cnt - 1.0).clamp_min(1.0)
    std = torch.sqrt(torch.clamp(var, min=epsilon))
    single = cnt <= 1.0
    mean[single] = 0.0
    std[single] = 1.0
    if norm_adv_by_std_in_grpo:
        sc = (scores - mean[g]) / (std[g] + epsilon)
    else:
        sc = scores - mean[g]
    a = sc.unsqueeze(-1) * m
    return a, a


def passk(r, m, index, epsilon=1e-6, norm_adv_by_std_in_grpo=True):
    scores = r.sum(-1)
    adv = torch.zeros_like(scores)
    gs, gi = defaultdict(list), defaultdict(list)
    for i in range(len(index)):
        gs[index[i]].append(scores[i])
        gi[index[i]].append(i)
    for k in gs:
        rw = torch.stack(gs[k])
        top, idx = torch.topk(rw, 2)
        a = top[0] - top[1]
        if norm_adv_by_std_in_grpo:
            a = a / (torch.std(rw) + epsilon)
        adv[gi[k][idx[0].item()]] = a
    a = adv.unsqueeze(-1) * m
    return a, a


def group_mean(scores, index):
    groups = defaultdict(list)
    for i in range(len(index)):
        groups[index[i]].append(scores[i])
    return {k: (t(0.0) if len(v) == 1 else torch.stack(v).mean()) for k, v in groups.items()}, groups


def rloo_loop(r, m, index, epsilon=1e-6):
    scores = r.sum(-1).clone()
    mean, groups = group_mean(scores, index)
    for i in range(len(index)):
        n = len(groups[index[i]])
        if n > 1:
            scores[i] = scores[i] * n / (n - 1) - mean[index[i]] * n / (n - 1)
    a = scores.unsqueeze(-1) * m
    return a, a


def rloo_vec(r, m, index, epsilon=1e-6):
    scores = r.sum(-1)
    inv = torch.from_numpy(np.unique(np.array([str(x) for x in index], dtype=object), return_inverse=True)[1].astype(np.int64))
    c = torch.bincount(inv)[inv].to(scores.dtype)
    adv = ((c * scores - torch.bincount(inv, weights=scores)[inv]) / (c - 1).clamp_min(1)) * (c > 1)
    a = adv.unsqueeze(-1) * m
    return a, a


def rfpp(r, m, gamma=1.0):
    ret = torch.zeros_like(r)
    run = 0
    for s in reversed(range(r.shape[1])):
        run = r[:, s] + gamma * run
        ret[:, s] = run
        run = run * m[:, s]
    return masked_whiten(ret, m) * m, ret


def rfpp_baseline(r, m, index, epsilon=1e-6):
    scores = r.sum(-1).clone()
    mean, _ = group_mean(scores, index)
    for i in range(len(index)):
        scores[i] = scores[i] - mean[index[i]]
    s = scores.unsqueeze(-1).tile([1, r.shape[1]]) * m
    a = masked_whiten(s, m) * m
    return a, a


def remax(r, b, m):
    ret = (r * m).flip(dims=[-1]).cumsum(dim=-1).flip(dims=[-1])
    return ret - b.unsqueeze(-1) * m, ret


def opo(r, m, index, epsilon=1e-6):
    L = m.sum(-1)
    scores = r.sum(-1).clone()
    gs, gl = defaultdict(list), defaultdict(list)
    for i in range(len(index)):
        gs[index[i]].append(scores[i])
        gl[index[i]].append(L[i])
    bsl = {}
    for k in gs:
        if len(gs[k]) == 1:
            bsl[k] = t(0.0)
        else:
            st, lt = torch.stack(gs[k]), torch.stack(gl[k])
            bsl[k] = (lt * st).sum() / lt.sum()
    for i in range(len(index)):
        scores[i] = scores[i] - bsl[index[i]]
    a = scores.unsqueeze(-1) * m
    return a, a


def gpg(r, m, index, epsilon=1e-6, f_norm=1.0, alpha=1.0):
    scores = r.sum(-1).clone()
    alpha = scores.shape[0] / torch.count_nonzero(scores).clamp(min=1)
    mean, _ = group_mean(scores, index)
    for i in range(len(index)):
        scores[i] = alpha * (scores[i] - mean[index[i]]) / f_norm
    a = scores.unsqueeze(-1) * m
    return a, a


# ----------------------------------------------------------------- verl losses


def with_grad(fn, lp, *args, **kw):
    lp = lp.clone().requires_grad_(True)
    loss, metrics = fn(lp, *args, **kw)
    loss.backward()
    out = {"pg_loss": loss.item(), "grad_log_prob": lp.grad}
    out.update({k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in metrics.items()})
    return out


def vanilla(lp, old, adv, m, p, isw=None):
    lo = p.get("clip_ratio_low", p.get("clip_ratio", 0.2))
    hi = p.get("clip_ratio_high", p.get("clip_ratio", 0.2))
    c = p.get("clip_ratio_c", 3.0)
    nk = torch.clamp(lp - old, -20.0, 20.0)
    ratio = torch.exp(nk)
    ppo_kl = masked_mean(-nk, m)
    l1 = -adv * ratio
    l2 = -adv * torch.clamp(ratio, 1 - lo, 1 + hi)
    cl1 = torch.maximum(l1, l2)
    clipfrac = masked_mean(torch.gt(l2, l1).double(), m)
    l3 = -adv * c
    cl2 = torch.min(l3, cl1)
    lower = masked_mean(torch.gt(cl1, l3) * (adv < 0).double(), m)
    pl = torch.where(adv < 0, cl2, cl1)
    if isw is not None:
        pl = pl * isw
    loss = agg_loss(pl, m, p.get("loss_agg_mode", "token-mean"), **gbi(p))
    return loss, {"pg_clipfrac": clipfrac, "ppo_kl": ppo_kl, "pg_clipfrac_lower": lower}


def gspo(lp, old, adv, m, p, isw=None):
    lo = p.get("clip_ratio_low", p.get("clip_ratio", 0.2))
    hi = p.get("clip_ratio_high", p.get("clip_ratio", 0.2))
    nk = lp - old
    L = m.sum(-1).clamp(min=1)
    seq = (nk * m).sum(-1) / L
    lsr = torch.clamp(lp - lp.detach() + seq.detach().unsqueeze(-1), max=10.0)
    sr = torch.exp(lsr)
    l1 = -adv * sr
    l2 = -adv * torch.clamp(sr, 1 - lo, 1 + hi)
    pl = torch.maximum(l1, l2)
    if isw is not None:
        pl = pl * isw
    loss = agg_loss(pl, m, "seq-mean-token-mean", **gbi(p))
    return loss, {"pg_clipfrac": masked_mean(torch.gt(l2, l1).double(), m), "ppo_kl": masked_mean(-nk, m), "pg_clipfrac_lower": 0.0}


def sapo(lp, old, adv, m, p, isw=None):
    tp, tn = p.get("tau_pos", 1.0), p.get("tau_neg", 1.05)
    nk = torch.clamp(lp - old, -20.0, 20.0)
    ratio = torch.exp(nk)
    taus = torch.where(adv > 0, t(tp), t(tn))
    gates = torch.sigmoid(taus * (ratio - 1.0)) * (4.0 / taus)
    pl = -gates * adv
    if isw is not None:
        pl = pl * isw
    loss = agg_loss(pl, m, "seq-mean-token-mean", **gbi(p))
    return loss, {"pg_clipfrac": 0.0, "ppo_kl": masked_mean(-nk, m), "pg_clipfrac_lower": 0.0}


def cispo(lp, old, adv, m, p, isw=None):
    lo = p.get("clip_ratio_low", p.get("clip_ratio", 0.2))
    hi = p.get("clip_ratio_high", p.get("clip_ratio", 0.2))
    nk = torch.clamp(lp - old, -20.0, 20.0)
    ratio = torch.exp(nk)
    cr = torch.clamp(ratio, 1 - lo, 1 + hi)
    pl = -cr.detach() * adv * lp
    frac = masked_mean((ratio != cr).double(), m)
    if isw is not None:
        pl = pl * isw
    loss = agg_loss(pl, m, p.get("loss_agg_mode", "token-mean"), **gbi(p))
    return loss, {"pg_clipfrac": frac, "ppo_kl": masked_mean(-nk, m), "pg_clipfrac_lower": 0.0}


def gpg_loss(lp, old, adv, m, p, isw=None):
    pl = -lp * adv
    if isw is not None:
        pl = pl * isw
    return agg_loss(pl, m, p.get("loss_agg_mode", "token-mean"), **gbi(p)), {}


def reinforce(lp, rollout, adv, m, p, isw=None):
    pl = -adv * lp * isw if isw is not None else -adv * lp
    loss = agg_loss(pl, m, p.get("loss_agg_mode", "seq-mean-token-sum"), **gbi(p))
    return loss, {"ppo_kl": masked_mean(-(lp - rollout), m)}


def geo_mean(lp, old, adv, m, p, isw=None):
    lo = p.get("clip_ratio_low", p.get("clip_ratio", 0.2))
    hi = p.get("clip_ratio_high", p.get("clip_ratio", 0.2))
    nk = lp - old
    ppo_kl = masked_mean(-nk, m)
    sg = torch.sign(adv)
    nkc = torch.clamp(nk, -lo, hi)
    nmin = sg * torch.min(sg * nk, sg * nkc)
    L = m.sum(-1)
    ratio = torch.exp((nmin * m).sum(-1) / (L + 1e-8))
    a = (adv * m).sum(-1) / (L + 1e-8)
    pl = -a * ratio
    if isw is not None:
        pl = pl * torch.exp((torch.log(isw + 1e-10) * m).sum(-1) / (L + 1e-8))
    clipped = torch.ne(nk, nkc)
    return pl.mean(), {
        "pg_clipfrac": masked_mean((clipped * (adv > 0)).double(), m),
        "ppo_kl": ppo_kl,
        "pg_clipfrac_lower": masked_mean((clipped * (adv < 0)).double(), m),
    }


def kl_cov(lp, old, adv, m, p, isw=None):
    ratio_k = p.get("kl_cov_ratio", 0.0002)
    coef = p.get("ppo_kl_coef", 1.0)
    nk = lp - old
    ratio = torch.exp(nk)
    ppo_kl_abs = masked_mean(nk.abs(), m)
    pl1 = -adv * ratio
    plkl = -adv * ratio + coef * nk.abs()
    pl = pl1.clone()
    valid = m > 0
    vidx = torch.nonzero(valid.reshape(-1), as_tuple=True)[0]
    va = adv[valid].detach().reshape(-1)
    vl = lp[valid].detach().reshape(-1)
    if len(va) > 0:
        cov = (va - va.mean()) * (vl - vl.mean())
        k = max(1, int(len(cov) * ratio_k))
        top = torch.topk(cov, k, largest=True).indices
        top = vidx[top]
        T_ = adv.shape[1]
        pl[top // T_, top % T_] = plkl[top // T_, top % T_]
    if isw is not None:
        pl = pl * isw
    return agg_loss(pl, m, p.get("loss_agg_mode", "token-mean"), **gbi(p)), {"ppo_kl": ppo_kl_abs}


def kl_value_grad(lp, rp, name, m):
    lp = lp.clone().requires_grad_(True)
    base = name[:-1] if name.endswith("+") else name

    def fwd(lp):
        if base in ("kl", "k1"):
            return lp - rp
        if base == "abs":
            return (lp - rp).abs()
        if base in ("mse", "k2"):
            return 0.5 * (lp - rp).square()
        kl = torch.clamp(rp - lp, min=-20, max=20)
        return torch.clamp(torch.exp(kl) - kl - 1, min=-10, max=10)

    f = fwd(lp)
    if name.endswith("+") and base not in ("mse", "k2"):
        # documented straight-through intent (verl @ b178a3cd raises here)
        bs = 0.5 * (lp - rp).square()
        out = bs - bs.detach() + f.detach()
    else:
        out = f
    (out * m).sum().backward()
    return f.detach(), lp.grad


def adaptive(updates, init_kl_coef=0.001, target_kl=0.1, horizon=10000):
    v, out = init_kl_coef, []
    for kl, n in updates:
        e = float(np.clip(kl / target_kl - 1, -0.2, 0.2))
        v *= 1 + e * n / horizon
        out.append(v)
    return out


# ----------------------------------------------------------------- TRL 1.16.0


def trl_loss(inputs, p):
    lt = p.get("loss_type", "dapo")
    eps_low = p.get("epsilon", 0.2)
    eps_high = p.get("epsilon_high", eps_low)
    beta = p.get("beta", 0.0)
    level = p.get("importance_sampling_level", "token")
    ga = p.get("gradient_accumulation_steps", 1)
    S = p.get("steps_per_generation", ga)
    P = p.get("num_processes", 1)
    mask = t(inputs["response_mask"])
    lp = t(inputs["log_prob"]).requires_grad_(True)
    ent = t(inputs["entropy"]).requires_grad_(True) if "entropy" in inputs else None
    old = t(inputs["old_log_prob"]) if "old_log_prob" in inputs else lp.detach()
    adv = t(inputs["advantages"])
    if adv.dim() == 1:
        adv = adv.unsqueeze(1)
    q = p.get("top_entropy_quantile", 1.0)
    ent_mask = None
    if q < 1.0:
        local = ent[mask.bool()].float()
        thr = torch.quantile(local, 1 - q)
        ent_mask = ((ent * mask.float()) >= thr) & mask.bool()
    opm = None
    if p.get("off_policy_mask_threshold") is not None:
        samp = t(inputs["sampling_per_token_logps"]) if "sampling_per_token_logps" in inputs else old
        kl_div = samp - lp.detach()
        avg = (kl_div * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp(min=1.0)
        opm = ((adv >= 0) | (avg <= p["off_policy_mask_threshold"])).to(mask.dtype)
    log_ratio = lp - old
    if level == "token":
        liw = log_ratio
    else:
        liw = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    coef_1 = torch.exp(liw)
    if beta != 0.0:
        rp = t(inputs["ref_log_prob"])
        per_token_kl = torch.exp(rp - lp) - (rp - lp) - 1
        if p.get("use_bias_correction_kl", True):
            per_token_kl = per_token_kl * coef_1
    if lt == "cispo":
        pl = -torch.clamp(coef_1, max=eps_high).detach() * adv * lp
    elif lt in ("grpo", "bnpo", "dr_grpo", "dapo", "luspo"):
        coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
        c1 = coef_1
        if p.get("delta") is not None:
            c1 = torch.clamp(coef_1, max=p["delta"])
        pl = -torch.min(c1 * adv, coef_2 * adv)
    elif lt == "sapo":
        temps = torch.where(adv > 0, t(p.get("sapo_temperature_pos", 1.0)), t(p.get("sapo_temperature_neg", 1.05)))
        pl = -(torch.sigmoid(temps * (coef_1 - 1)) * 4 / temps) * adv
    elif lt == "vespo":
        with torch.no_grad():
            low = math.log(1e-8)
            slr = torch.sum(torch.clamp(log_ratio, -20.0, 20.0) * mask, dim=-1, keepdim=True)
            if "importance_sampling_ratio" in inputs:
                slr = slr + torch.sum(torch.clamp(torch.log(t(inputs["importance_sampling_ratio"])), low, 20.0), dim=-1, keepdim=True)
            lw = torch.clamp(slr, low, 20.0)
            nonneg = adv >= 0
            k = torch.where(nonneg, t(p.get("vespo_k_pos", 2.0)), t(p.get("vespo_k_neg", 3.0)))
            lam = torch.where(nonneg, t(p.get("vespo_lambda_pos", 3.0)), t(p.get("vespo_lambda_neg", 2.0))).clamp(min=1e-4)
            phi = torch.exp(lam + k * lw - lam * torch.exp(lw)).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
        pl = -phi * adv * lp
    if opm is not None:
        pl = pl * opm
    if ent_mask is not None:
        pl = pl * ent_mask
    if "importance_sampling_ratio" in inputs and lt != "vespo":
        pl = pl * t(inputs["importance_sampling_ratio"])
    if beta != 0.0:
        pl = pl + beta * per_token_kl
    if lt in ("grpo", "sapo"):
        loss = ((pl * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
        policy = loss.detach()
        loss = loss / ga
    elif lt == "bnpo":
        loss = (pl * mask).sum() / mask.sum().clamp(min=1.0)
        policy = loss.detach()
        loss = loss / ga
    elif lt == "dr_grpo":
        loss = (pl * mask).sum() / (pl.size(0) * p.get("max_completion_length", 512))
        policy = loss.detach()
        loss = loss / ga
    elif lt in ("cispo", "dapo", "vespo"):
        n = t(p.get("num_items_in_batch", float(mask.sum()))).clamp(min=1.0) / P
        n = n * ga / S
        loss = (pl * mask).sum() / n
        policy = loss.detach()
    elif lt == "luspo":
        loss = (pl * mask).sum(-1).mean()
        policy = loss.detach()
        loss = loss / ga
    c = p.get("entropy_coef", 0.0)
    if c != 0.0:
        eff = mask if ent_mask is None else mask * ent_mask
        el = (ent * eff).sum() / eff.sum().clamp(min=1.0) / ga
        loss = loss - c * el
    loss.backward()
    out = {
        "loss": loss.item(),
        "policy_loss": policy.item(),
        "grad_log_prob": lp.grad,
        "grad_entropy": ent.grad if (ent is not None and ent.grad is not None) else torch.zeros_like(mask),
    }

    def gmm(x):
        if x.shape[1] == 1:
            return float(x.sum() / max(float(x.shape[0]), 1.0))
        return float((x * mask).sum() / mask.sum().clamp(min=1.0))

    if beta != 0.0:
        out["kl"] = gmm(per_token_kl.detach())
    if lt in ("grpo", "bnpo", "dr_grpo", "dapo", "luspo"):
        c1d = coef_1.detach()
        lo_c = ((c1d < 1 - eps_low) & (adv < 0)).double()
        hi_c = ((c1d > 1 + eps_high) & (adv > 0)).double()
        out["clip_ratio/low_mean"] = gmm(lo_c)
        out["clip_ratio/high_mean"] = gmm(hi_c)
        out["clip_ratio/region_mean"] = gmm(((lo_c + hi_c) > 0).double())
    elif lt == "cispo":
        out["cispo_clip_ratio"] = gmm(((coef_1.detach() > eps_high) & (adv > 0)).double())
    elif lt == "vespo":
        out["vespo/phi_seq_mean"] = gmm(phi)
    return out


# ----------------------------------------------------------------- case builders


def rnd(shape, scale=1.0):
    return np.round(RNG.normal(0, scale, size=shape), 6)


def mask_from_lengths(lengths, T):
    return t([[1.0 if s < L else 0.0 for s in range(T)] for L in lengths])


def outcome_rewards(scores, m):
    r = torch.zeros_like(m)
    for i, sc in enumerate(scores):
        nz = torch.nonzero(m[i]).flatten()
        r[i, int(nz[-1]) if len(nz) else 0] = sc
    return r


def advantage_cases():
    m = mask_from_lengths([4, 2, 3, 1, 4, 3, 2], 5)
    scores = [1.0, 0.0, 0.5, 1.0, 0.25, 0.7, -0.3]
    index = ["a", "a", "a", 7, 7, "solo", "b"]
    # "b" is a second singleton; 7 (int) is a group of two
    index[6] = "b"
    r = outcome_rewards(scores, m)
    base = {"token_level_rewards": r, "response_mask": m, "index": index}
    for norm in (True, False):
        a, ret = grpo_loop(r, m, index, 1e-6, norm)
        add(f"grpo loop, singletons, norm={norm}", "verl.compute_grpo_outcome_advantage",
            {"norm_adv_by_std_in_grpo": norm}, base, {"advantages": a, "returns": ret})
        a, ret = grpo_vectorized(r, m, index, 1e-6, norm)
        add(f"grpo vectorized, singletons, norm={norm}", "verl.compute_grpo_vectorized_outcome_advantage",
            {"norm_adv_by_std_in_grpo": norm}, base, {"advantages": a, "returns": ret})
    # near-zero variance: loop and vectorised differ (var floor)
    r2 = outcome_rewards([1.0, 1.0004, 1.0002, 0.0, 0.0], mask_from_lengths([2, 2, 2, 2, 2], 2))
    m2 = mask_from_lengths([2, 2, 2, 2, 2], 2)
    idx2 = [0, 0, 0, 1, 1]
    a, _ = grpo_loop(r2, m2, idx2)
    add("grpo loop, tiny variance", "verl.compute_grpo_outcome_advantage", {"epsilon": 1e-6},
        {"token_level_rewards": r2, "response_mask": m2, "index": idx2}, {"advantages": a})
    a, _ = grpo_vectorized(r2, m2, idx2)
    add("grpo vectorized, tiny variance floor", "verl.compute_grpo_vectorized_outcome_advantage", {"epsilon": 1e-6},
        {"token_level_rewards": r2, "response_mask": m2, "index": idx2}, {"advantages": a})
    # [B] rewards input placed on the last valid token
    a, ret = grpo_loop(r, m, index)
    add("grpo loop, [B] rewards", "verl.compute_grpo_outcome_advantage", {},
        {"rewards": scores, "response_mask": m, "index": index}, {"advantages": a})
    add("grpo loop, `uid` alias for index", "verl.compute_grpo_outcome_advantage", {},
        {"rewards": scores, "response_mask": m, "uid": index}, {"advantages": a})
    # pass@k
    idx3 = ["p", "p", "p", "q", "q", "q", "q"]
    r3 = outcome_rewards([0.2, 0.9, 0.5, 1.0, 1.0, 0.0, 0.3], m)
    for norm in (True, False):
        a, _ = passk(r3, m, idx3, 1e-6, norm)
        add(f"passk norm={norm} (tie in group q)", "verl.compute_grpo_passk_outcome_advantage",
            {"norm_adv_by_std_in_grpo": norm}, {"token_level_rewards": r3, "response_mask": m, "index": idx3}, {"advantages": a})
    a, _ = rloo_loop(r, m, index)
    add("rloo loop, singleton keeps score", "verl.compute_rloo_outcome_advantage", {}, base, {"advantages": a, "returns": a})
    a, _ = rloo_vec(r, m, index)
    add("rloo vectorized, singleton zero", "verl.compute_rloo_vectorized_outcome_advantage", {}, base, {"advantages": a, "returns": a})
    a, _ = rfpp_baseline(r, m, index)
    add("reinforce++ baseline", "verl.compute_reinforce_plus_plus_baseline_outcome_advantage", {}, base, {"advantages": a})
    a, _ = opo(r, m, index)
    add("opo length-weighted", "verl.compute_opo_outcome_advantage", {}, base, {"advantages": a})
    rz = outcome_rewards([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 2.0], m)
    a, _ = gpg(rz, m, index, f_norm=2.0, alpha=5.0)
    add("gpg alpha from nonzero count, alpha arg ignored", "verl.compute_gpg_outcome_advantage", {"alpha": 5.0, "f_norm": 2.0},
        {"token_level_rewards": rz, "response_mask": m, "index": index}, {"advantages": a})
    # token-level rewards for REINFORCE++ and ReMax
    rt = t(rnd((4, 5))) * mask_from_lengths([5, 3, 4, 2], 5)
    rt[1, 4] = 0.7  # a reward beyond the mask (counts in the return recursion for gamma)
    mt = mask_from_lengths([5, 3, 4, 2], 5)
    for g in (1.0, 0.9):
        a, ret = rfpp(rt, mt, g)
        add(f"reinforce++ gamma={g}", "verl.compute_reinforce_plus_plus_outcome_advantage", {"gamma": g},
            {"token_level_rewards": rt, "response_mask": mt}, {"advantages": a, "returns": ret})
    bl = t([0.3, -0.2, 0.0, 1.0])
    a, ret = remax(rt, bl, mt)
    add("remax", "verl.compute_remax_outcome_advantage", {},
        {"token_level_rewards": rt, "response_mask": mt, "reward_baselines": bl}, {"advantages": a, "returns": ret})


def loss_inputs(B=4, T=6, lengths=(6, 3, 5, 2), spread=0.35, seq_adv=True):
    m = mask_from_lengths(list(lengths), T)
    old = t(rnd((B, T), 0.8)) - 1.5
    lp = old + t(rnd((B, T), spread))
    if seq_adv:
        adv = t(rnd((B, 1), 1.0)).expand(B, T).clone()
    else:
        adv = t(rnd((B, T), 1.0))
    return {"old_log_prob": old, "log_prob": lp, "advantages": adv, "response_mask": m}


def loss_case(case, fname, p, f, x, isw=None, old_key="old_log_prob"):
    out = with_grad(f, x["log_prob"], x["old_log_prob"], x["advantages"], x["response_mask"], p, isw)
    inputs = {old_key: x["old_log_prob"], "log_prob": x["log_prob"], "advantages": x["advantages"], "response_mask": x["response_mask"]}
    if isw is not None:
        inputs["rollout_is_weights"] = isw
    add(case, fname, p, inputs, out)


def policy_loss_cases():
    x = loss_inputs()
    xt = loss_inputs(seq_adv=False, spread=0.6)
    # force a dual-clip token: A<0 and ratio > 3
    xt["log_prob"][0, 1] = xt["old_log_prob"][0, 1] + 1.5
    xt["advantages"][0, 1] = -0.8
    # one token beyond the +-20 clamp
    xt["log_prob"][2, 0] = xt["old_log_prob"][2, 0] + 25.0
    xt["advantages"][2, 0] = 0.4
    isw = t(np.round(RNG.uniform(0.5, 1.5, size=(4, 6)), 6))
    for mode in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"):
        loss_case(f"vanilla {mode}", "verl.compute_policy_loss_vanilla", verl_vanilla_p(mode), vanilla, x)
    loss_case("vanilla clip-higher dual-clip clamp", "verl.compute_policy_loss_vanilla",
              {"clip_ratio_low": 0.2, "clip_ratio_high": 0.28, "clip_ratio_c": 3.0}, vanilla, xt)
    loss_case("vanilla global batch info", "verl.compute_policy_loss_vanilla",
              {"loss_agg_mode": "token-mean", "dp_size": 4, "batch_num_tokens": 40}, vanilla, xt)
    loss_case("vanilla sum-norm with loss_scale_factor", "verl.compute_policy_loss_vanilla",
              {"loss_agg_mode": "seq-mean-token-sum-norm", "loss_scale_factor": 512}, vanilla, xt)
    loss_case("vanilla rollout IS weights", "verl.compute_policy_loss_vanilla", {}, vanilla, xt, isw)
    loss_case("gspo forced seq-mean-token-mean", "verl.compute_policy_loss_gspo",
              {"clip_ratio_low": 0.05, "clip_ratio_high": 0.08, "loss_agg_mode": "token-mean"}, gspo, x)
    loss_case("gspo token advantages", "verl.compute_policy_loss_gspo", {}, gspo, xt)
    loss_case("sapo", "verl.compute_policy_loss_sapo", {"tau_pos": 1.0, "tau_neg": 1.05}, sapo, xt)
    loss_case("sapo IS weights", "verl.compute_policy_loss_sapo", {}, sapo, x, isw)
    loss_case("cispo", "verl.compute_policy_loss_cispo", {"clip_ratio_low": 10.0, "clip_ratio_high": 0.2}, cispo, xt)
    loss_case("cispo seq-mean-token-sum", "verl.compute_policy_loss_cispo",
              {"clip_ratio": 0.1, "loss_agg_mode": "seq-mean-token-sum"}, cispo, x)
    loss_case("gpg", "verl.compute_policy_loss_gpg", {}, gpg_loss, xt)
    loss_case("gpg seq-mean-token-mean", "verl.compute_policy_loss_gpg", {"loss_agg_mode": "seq-mean-token-mean"}, gpg_loss, x)
    loss_case("geo_mean", "verl.compute_policy_loss_geo_mean", {"clip_ratio_low": 0.2, "clip_ratio_high": 0.3}, geo_mean, x)
    loss_case("geo_mean token advantages with IS", "verl.compute_policy_loss_geo_mean", {}, geo_mean, xt, isw)
    loss_case("kl_cov default ratio (one token)", "verl.compute_policy_loss_kl_cov", {}, kl_cov, xt)
    loss_case("kl_cov ratio 0.2 coef 0.1", "verl.compute_policy_loss_kl_cov", {"kl_cov_ratio": 0.2, "ppo_kl_coef": 0.1}, kl_cov, xt)
    loss_case("reinforce default seq-mean-token-sum", "verl.compute_policy_loss_reinforce", {}, reinforce, xt, None, "rollout_log_prob")
    loss_case("reinforce IS token-mean", "verl.compute_policy_loss_reinforce", {"loss_agg_mode": "token-mean"}, reinforce, x, isw,
              "rollout_log_prob")
    # empty row: excluded from seq counts
    xe = loss_inputs(lengths=(6, 0, 5, 2))
    loss_case("vanilla seq-mean-token-mean with an empty row", "verl.compute_policy_loss_vanilla",
              {"loss_agg_mode": "seq-mean-token-mean"}, vanilla, xe)


def verl_vanilla_p(mode):
    return {"loss_agg_mode": mode}


def agg_cases():
    m = mask_from_lengths([4, 0, 2], 6)
    lm = t(rnd((3, 6)))
    for mode, extra in [
        ("token-mean", {}),
        ("token-mean", {"dp_size": 2, "batch_num_tokens": 10}),
        ("seq-mean-token-sum", {}),
        ("seq-mean-token-sum", {"global_batch_size": 8, "dp_size": 2}),
        ("seq-mean-token-mean", {}),
        ("seq-mean-token-sum-norm", {}),
        ("seq-mean-token-sum-norm", {"loss_scale_factor": 100}),
    ]:
        x = lm.clone().requires_grad_(True)
        loss = agg_loss(x, m, mode, **extra)
        loss.backward()
        add(f"agg_loss {mode} {extra}", "verl.agg_loss", {"loss_agg_mode": mode, **extra},
            {"loss_mat": lm, "loss_mask": m}, {"loss": loss.item(), "grad_loss_mat": x.grad})
    # padded-width divisor: same data, padded to 10 columns, different loss
    m10 = torch.cat([m, torch.zeros(3, 4)], dim=1)
    l10 = torch.cat([lm, t(rnd((3, 4)))], dim=1)
    x = l10.clone().requires_grad_(True)
    loss = agg_loss(x, m10, "seq-mean-token-sum-norm")
    loss.backward()
    add("agg_loss seq-mean-token-sum-norm divides by padded width 10", "verl.agg_loss",
        {"loss_agg_mode": "seq-mean-token-sum-norm"}, {"loss_mat": l10, "loss_mask": m10},
        {"loss": loss.item(), "grad_loss_mat": x.grad})


def kl_cases():
    lp = t(rnd((3, 4), 1.0)) - 1.0
    rp = t(rnd((3, 4), 1.0)) - 1.0
    lp[0, 0], rp[0, 0] = -1.0, 24.0  # -u = 25 -> clamp 20 -> kld clamp 10
    lp[1, 1], rp[1, 1] = -30.0, -1.0  # -u = 29 clamped
    lp[2, 2], rp[2, 2] = -1.0, -4.0  # kld = e^-3 + 3 - 1 < 10
    m = mask_from_lengths([4, 3, 4], 4)
    for name in ("kl", "k1", "abs", "mse", "k2", "low_var_kl", "k3", "k3+", "low_var_kl+", "k1+", "abs+"):
        kl, g = kl_value_grad(lp, rp, name, m)
        add(f"kl_penalty {name}", "verl.kl_penalty", {"kl_penalty": name},
            {"log_prob": lp, "ref_log_prob": rp, "response_mask": m}, {"kl": kl, "grad_log_prob_of_masked_sum": g})
    kl, g = kl_value_grad(lp, rp, "k3", torch.ones_like(lp))
    add("kl_penalty verl argument names, no mask", "verl.kl_penalty", {"kl_penalty": "k3"},
        {"logprob": lp, "ref_logprob": rp}, {"kl": kl, "grad_log_prob_of_masked_sum": g})


def whiten_cases():
    v = t(rnd((3, 5), 2.0)) + 1.0
    m = mask_from_lengths([5, 2, 3], 5)
    for sm in (True, False):
        add(f"masked_whiten shift_mean={sm}", "verl.masked_whiten", {"shift_mean": sm},
            {"values": v, "mask": m}, {"whitened": masked_whiten(v, m, sm)})
    ups = [[0.05, 256], [0.3, 512], [0.1, 128], [0.0, 1024], [0.12, 64]]
    add("adaptive KL controller", "verl.AdaptiveKLController", {"init_kl_coef": 0.2, "target_kl": 0.1, "horizon": 1000},
        {"updates": ups}, {"values_after_each_update": adaptive(ups, 0.2, 0.1, 1000)})
    add("adaptive KL controller defaults", "verl.AdaptiveKLController", {}, {"updates": ups},
        {"values_after_each_update": adaptive(ups)})


def trl_cases():
    B, T = 4, 6
    m = mask_from_lengths([6, 3, 5, 2], T)
    old = t(rnd((B, T), 0.8)) - 1.5
    lp = old + t(rnd((B, T), 0.35))
    rp = old + t(rnd((B, T), 0.3))
    ent = t(np.round(RNG.uniform(0.0, 3.0, size=(B, T)), 6))
    adv = t(rnd((B,), 1.0))
    isr = t(np.round(RNG.uniform(0.6, 1.4, size=(B, T)), 6))
    samp = old + t(rnd((B, T), 0.3))
    base = {"log_prob": lp, "old_log_prob": old, "advantages": adv, "response_mask": m}
    cases = []
    for lt in ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "vespo", "luspo"):
        p = {"loss_type": lt}
        if lt == "cispo":
            p["epsilon_high"] = 1.05
        if lt == "luspo":
            p["importance_sampling_level"] = "sequence"
        if lt == "dr_grpo":
            p["max_completion_length"] = 8
        cases.append((f"trl {lt}", p, dict(base)))
    cases += [
        ("trl grpo sequence level", {"loss_type": "grpo", "importance_sampling_level": "sequence", "epsilon": 0.02}, dict(base)),
        ("trl dapo delta two-sided", {"loss_type": "dapo", "delta": 1.1, "epsilon": 0.05, "epsilon_high": 0.08}, dict(base)),
        ("trl dapo beta with bias correction", {"loss_type": "dapo", "beta": 0.04}, {**base, "ref_log_prob": rp}),
        ("trl dapo beta without bias correction", {"loss_type": "dapo", "beta": 0.04, "use_bias_correction_kl": False},
         {**base, "ref_log_prob": rp}),
        ("trl grpo sequence level beta", {"loss_type": "grpo", "importance_sampling_level": "sequence", "beta": 0.1},
         {**base, "ref_log_prob": rp}),
        ("trl dapo top entropy quantile + entropy bonus", {"loss_type": "dapo", "top_entropy_quantile": 0.4, "entropy_coef": 0.01},
         {**base, "entropy": ent}),
        ("trl grpo entropy bonus", {"loss_type": "grpo", "entropy_coef": 0.05, "gradient_accumulation_steps": 2}, {**base, "entropy": ent}),
        ("trl dapo GA/S rescaling", {"loss_type": "dapo", "num_items_in_batch": 40, "gradient_accumulation_steps": 2,
                                     "steps_per_generation": 4, "num_processes": 2}, dict(base)),
        ("trl bnpo GA", {"loss_type": "bnpo", "gradient_accumulation_steps": 3}, dict(base)),
        ("trl dapo IS ratio", {"loss_type": "dapo"}, {**base, "importance_sampling_ratio": isr}),
        ("trl vespo IS ratio", {"loss_type": "vespo"}, {**base, "importance_sampling_ratio": isr}),
        ("trl dapo off-policy mask", {"loss_type": "dapo", "off_policy_mask_threshold": 0.05},
         {**base, "sampling_per_token_logps": samp}),
        ("trl dapo on-policy (no old_log_prob)", {"loss_type": "dapo"},
         {"log_prob": lp, "advantages": adv, "response_mask": m}),
        ("trl sapo token advantages", {"loss_type": "sapo"}, {**base, "advantages": t(rnd((B, T), 1.0))}),
        ("trl defaults", {}, dict(base)),
        ("trl cispo sequence level", {"loss_type": "cispo", "importance_sampling_level": "sequence", "epsilon_high": 1.02},
         dict(base)),
        ("trl vespo token advantages", {"loss_type": "vespo"}, {**base, "advantages": t(rnd((B, T), 1.0))}),
    ]
    for case, p, inputs in cases:
        add(case, "trl.grpo_loss", p, inputs, trl_loss({k: lst(v) for k, v in inputs.items()}, p))


def crosscheck_verl(src):
    """Runs verl's own core_algos (loaded from a checkout at `src`, its heavy imports
    stubbed) on every verl case of OUT and reports mismatches."""
    import sys
    import types


    def mod(name, **attrs):
        m = types.ModuleType(name); m.__dict__.update(attrs); sys.modules[name] = m; return m

    class DictConfig(dict): pass
    class AlgoConfig:
        def __init__(self, **kw): self.__dict__.update(kw)
        def get(self, k, d=None): return self.__dict__.get(k, d)
    class ActorConfig:
        def __init__(self, **kw): self.__dict__.update(kw)
        def get(self, k, d=None): return self.__dict__.get(k, d)
    class PolicyLoss(AlgoConfig): pass
    mod("tensordict", TensorDict=object)
    mod("omegaconf", DictConfig=DictConfig)
    mod("verl"); mod("verl.utils"); mod("verl.trainer"); mod("verl.trainer.ppo"); mod("verl.workers")
    mod("verl.utils.device", get_device_name=lambda: "cpu", get_torch_device=lambda: torch.cpu)
    mod("verl.trainer.config", AlgoConfig=AlgoConfig)
    mod("verl.workers.config", ActorConfig=ActorConfig)
    mod("verl.utils.import_utils", deprecated=lambda *a, **k: (lambda f: f))
    def load(name, path):
        m = types.ModuleType(name); m.__file__ = path
        sys.modules[name] = m
        exec(compile(open(path).read(), path, "exec"), m.__dict__)
        return m
    F = load("verl.utils.torch_functional", os.path.join(src, "verl/utils/torch_functional.py"))
    sys.modules["verl.utils"].torch_functional = F
    G = load("verl.utils.groupwise", os.path.join(src, "verl/utils/groupwise.py"))
    sys.modules["verl.utils"].as_torch_index = G.as_torch_index
    sys.modules["verl.utils"].group_mean_std = G.group_mean_std
    C = load("verl.trainer.ppo.core_algos", os.path.join(src, "verl/trainer/ppo/core_algos.py"))

    def T(x): return torch.tensor(x, dtype=torch.float64)
    def flat(v):
        if isinstance(v, list): return [y for x in v for y in flat(x)]
        return [float(v)]

    def rewards(inp):
        m = T(inp["response_mask"])
        r = inp.get("token_level_rewards", inp.get("rewards"))
        r = T(r)
        if r.dim() == 1:
            out = torch.zeros_like(m)
            for i in range(len(r)):
                nz = torch.nonzero(m[i]).flatten()
                out[i, int(nz[-1]) if len(nz) else 0] = r[i]
            r = out
        return r, m

    GLOBAL = ("dp_size", "batch_num_tokens", "global_batch_size", "loss_scale_factor")
    bad = 0; n = 0
    for line in open(OUT):
        c = json.loads(line); fn = c["fn"]; p = c["params"]; inp = c["inputs"]; exp = c["expected"]
        if not fn.startswith("verl."): continue
        name = fn[5:]; got = {}
        if name.endswith("_advantage"):
            r, m = rewards(inp)
            idx = inp.get("index", inp.get("uid"))
            idx = (np.array([str(x) for x in idx], dtype=object) if len({type(x) for x in idx}) > 1 else np.array(idx)) if idx is not None else None
            f = getattr(C, name)
            cfg = AlgoConfig(gamma=p.get("gamma", 1.0), norm_adv_by_std_in_grpo=p.get("norm_adv_by_std_in_grpo", True))
            if "remax" in name:
                a, ret = f(token_level_rewards=r, reward_baselines=T(inp["reward_baselines"]), response_mask=m, config=cfg)
            elif "reinforce_plus_plus_outcome" in name:
                a, ret = f(token_level_rewards=r, response_mask=m, config=cfg)
            else:
                kw = {k: v for k, v in p.items() if k in ("epsilon", "norm_adv_by_std_in_grpo", "f_norm", "alpha")}
                if "passk" in name: kw.pop("norm_adv_by_std_in_grpo", None)
                a, ret = f(token_level_rewards=r, response_mask=m, index=idx, config=cfg, **kw)
            got = {"advantages": a.tolist(), "returns": ret.tolist()}
        elif name.startswith("compute_policy_loss"):
            lp = T(inp["log_prob"]).requires_grad_(True)
            old = T(inp.get("old_log_prob", inp.get("rollout_log_prob")))
            adv, m = T(inp["advantages"]), T(inp["response_mask"])
            isw = T(inp["rollout_is_weights"]) if "rollout_is_weights" in inp else None
            cfg = ActorConfig(clip_ratio=p.get("clip_ratio", 0.2), clip_ratio_low=p.get("clip_ratio_low"),
                              clip_ratio_high=p.get("clip_ratio_high"), clip_ratio_c=p.get("clip_ratio_c", 3.0),
                              tau_pos=p.get("tau_pos", 1.0), tau_neg=p.get("tau_neg", 1.05),
                              policy_loss=PolicyLoss(kl_cov_ratio=p.get("kl_cov_ratio"), ppo_kl_coef=p.get("ppo_kl_coef")),
                              global_batch_info={k: p[k] for k in GLOBAL if k in p})
            f = getattr(C, name)
            kw = {}
            if "loss_agg_mode" in p: kw["loss_agg_mode"] = p["loss_agg_mode"]
            if name == "compute_policy_loss_reinforce":
                loss, met = f(rollout_log_prob=old, log_prob=lp, advantages=adv, response_mask=m, config=cfg, rollout_is_weights=isw, **kw)
            else:
                loss, met = f(old_log_prob=old, log_prob=lp, advantages=adv, response_mask=m, config=cfg, rollout_is_weights=isw, **kw)
            loss.backward()
            got = {"pg_loss": loss.item(), "grad_log_prob": lp.grad.tolist()}
            got.update({k.split("/")[-1]: v for k, v in met.items()})
        elif name == "agg_loss":
            lm = T(inp["loss_mat"]).requires_grad_(True)
            kw = {k: p[k] for k in GLOBAL if k in p}
            loss = C.agg_loss(lm, T(inp["loss_mask"]), p["loss_agg_mode"], **kw); loss.backward()
            got = {"loss": loss.item(), "grad_loss_mat": lm.grad.tolist()}
        elif name == "kl_penalty":
            lp = T(inp.get("log_prob", inp.get("logprob"))).requires_grad_(True)
            rp = T(inp.get("ref_log_prob", inp.get("ref_logprob")))
            m = T(inp["response_mask"]) if "response_mask" in inp else torch.ones_like(rp)
            try:
                kl = C.kl_penalty(lp, rp, p["kl_penalty"]); (kl * m).sum().backward()
                got = {"kl": kl.tolist(), "grad_log_prob_of_masked_sum": lp.grad.tolist()}
            except NotImplementedError:
                print(f"  verl raises NotImplementedError: {c['case']} (documented)"); continue
        elif name == "masked_whiten":
            got = {"whitened": F.masked_whiten(T(inp["values"]), T(inp["mask"]), p.get("shift_mean", True)).tolist()}
        elif name == "AdaptiveKLController":
            k = C.AdaptiveKLController(p.get("init_kl_coef", 0.001), p.get("target_kl", 0.1), p.get("horizon", 10000))
            vals = []
            for kl_, ns in inp["updates"]:
                k.update(kl_, ns); vals.append(float(k.value))
            got = {"values_after_each_update": vals}
        n += 1
        for key, want in exp.items():
            if key not in got:
                print(f"MISSING {c['case']}: {key} (verl returns {list(got)})"); bad += 1; continue
            w, g = flat(want), flat(got[key])
            if len(w) != len(g) or any(abs(a - b) > 1e-6 * max(1, abs(b)) for a, b in zip(g, w)):
                print(f"MISMATCH {c['case']}: {key}: verl {g[:6]} vs expected {w[:6]}"); bad += 1
    print(f"checked {n} verl cases against verl's own code, {bad} mismatches")
    return bad


def crosscheck_trl(src):
    """Runs TRL's own GRPOTrainer._compute_loss (extracted with ast from an unpacked
    trl==1.16.0 wheel at `src`, executed on a stub trainer) on every trl case of OUT."""
    import ast
    import types

    src = open(os.path.join(src, "trl/trainer/grpo_trainer.py")).read()
    tree = ast.parse(src)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "GRPOTrainer")
    want = {"_compute_loss", "get_high_entropy_mask", "get_off_policy_mask", "get_gamma_weights"}
    ns = {"torch": torch, "math": math,
          "nanmin": lambda x: torch.min(x[~torch.isnan(x)]) if (~torch.isnan(x)).any() else torch.tensor(float("nan")),
          "nanmax": lambda x: torch.max(x[~torch.isnan(x)]) if (~torch.isnan(x)).any() else torch.tensor(float("nan"))}
    funcs = {}
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name in want:
            static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list)
            node.decorator_list = [d for d in node.decorator_list if not (isinstance(d, ast.Name) and d.id in ("staticmethod", "profiling_decorator"))]
            mod = ast.Module(body=[node], type_ignores=[])
            exec(compile(mod, "grpo_trainer.py", "exec"), ns)
            funcs[node.name] = (ns[node.name], static)

    class Acc:
        num_processes = 1
        sync_gradients = True
        def pad_across_processes(self, x, dim=0, pad_index=0): return x
        def gather(self, x): return x
        def gather_for_metrics(self, x): return x
        def reduce(self, x, reduction="sum"): return x

    def T(x): return torch.tensor(x, dtype=torch.float64)

    def run(p, inp):
        lt = p.get("loss_type", "dapo")
        self = types.SimpleNamespace()
        for name, (f, static) in funcs.items():
            setattr(self, name, f if static else types.MethodType(f, self))
        lp = T(inp["log_prob"]).requires_grad_(True)
        ent = T(inp["entropy"]).requires_grad_(True) if "entropy" in inp else torch.zeros_like(lp)
        self._get_per_token_logps_and_entropies = lambda *a, **k: (lp, ent, None)
        self.accelerator = Acc(); self.accelerator.num_processes = p.get("num_processes", 1)
        self.aux_loss_enabled = False
        self.top_entropy_quantile = p.get("top_entropy_quantile", 1.0)
        self.off_policy_mask_threshold = p.get("off_policy_mask_threshold")
        self.importance_sampling_level = p.get("importance_sampling_level", "token")
        self.beta = p.get("beta", 0.0)
        self.loss_type = lt
        self.epsilon_low = p.get("epsilon", 0.2)
        self.epsilon_high = p.get("epsilon_high") if p.get("epsilon_high") is not None else self.epsilon_low
        self.use_vllm = "importance_sampling_ratio" in inp
        self.vllm_importance_sampling_correction = True
        ga = p.get("gradient_accumulation_steps", 1)
        self.current_gradient_accumulation_steps = ga
        self.max_completion_length = p.get("max_completion_length", 512)
        self.entropy_coef = p.get("entropy_coef", 0.0)
        self._entropy_bonus_enabled = self.entropy_coef != 0.0
        self.use_adaptive_entropy = False
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        self.model = types.SimpleNamespace(training=True)
        self.args = types.SimpleNamespace(
            use_bias_correction_kl=p.get("use_bias_correction_kl", True), delta=p.get("delta"),
            sapo_temperature_pos=p.get("sapo_temperature_pos", 1.0), sapo_temperature_neg=p.get("sapo_temperature_neg", 1.05),
            vespo_k_pos=p.get("vespo_k_pos", 2.0), vespo_lambda_pos=p.get("vespo_lambda_pos", 3.0),
            vespo_k_neg=p.get("vespo_k_neg", 3.0), vespo_lambda_neg=p.get("vespo_lambda_neg", 2.0),
            steps_per_generation=p.get("steps_per_generation", ga))
        m = T(inp["response_mask"])
        B, Tn = m.shape
        inputs = {"prompt_ids": torch.zeros(B, 1, dtype=torch.long), "prompt_mask": torch.ones(B, 1, dtype=torch.long),
                  "completion_ids": torch.zeros(B, Tn, dtype=torch.long), "completion_mask": m,
                  "advantages": T(inp["advantages"]),
                  "num_items_in_batch": T(p.get("num_items_in_batch", float(m.sum())))}
        if "old_log_prob" in inp: inputs["old_per_token_logps"] = T(inp["old_log_prob"])
        if "ref_log_prob" in inp: inputs["ref_per_token_logps"] = T(inp["ref_log_prob"])
        if "importance_sampling_ratio" in inp: inputs["importance_sampling_ratio"] = T(inp["importance_sampling_ratio"])
        if "sampling_per_token_logps" in inp: inputs["sampling_per_token_logps"] = T(inp["sampling_per_token_logps"])
        loss = self._compute_loss(None, inputs)
        loss.backward()
        met = self._metrics["train"]
        out = {"loss": loss.item(), "grad_log_prob": lp.grad.tolist(),
               "grad_entropy": (ent.grad if ent.grad is not None else torch.zeros_like(m)).tolist()}
        for k in ("kl", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean", "cispo_clip_ratio", "vespo/phi_seq_mean", "policy_loss"):
            if met.get(k): out[k] = met[k][-1]
        return out

    def flat(v):
        if isinstance(v, list): return [y for x in v for y in flat(x)]
        return [float(v)]

    bad = n = 0
    for line in open(OUT):
        c = json.loads(line)
        if c["fn"] != "trl.grpo_loss": continue
        n += 1
        got = run(c["params"], c["inputs"])
        for k, w in c["expected"].items():
            if k not in got:
                if k == "policy_loss": continue  # TRL logs it only with an entropy bonus
                print(f"MISSING {c['case']}: {k}"); bad += 1; continue
            g, w = flat(got[k]), flat(w)
            if len(g) != len(w) or any(abs(a - b) > 1e-6 * max(1, abs(b)) for a, b in zip(g, w)):
                print(f"MISMATCH {c['case']}: {k}: trl {g[:6]} vs expected {w[:6]}"); bad += 1
    print(f"checked {n} trl cases against TRL's own _compute_loss, {bad} mismatches")
    return bad


def random_combo_cases(n_verl=16, n_trl=24):
    """Random shapes and parameter combinations (seeded), beyond the hand-picked cases."""
    fns = {"vanilla": vanilla, "gspo": gspo, "sapo": sapo, "cispo": cispo, "gpg": gpg_loss,
           "geo_mean": geo_mean, "kl_cov": kl_cov, "reinforce": reinforce}
    modes = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]
    names = sorted(fns)
    for k in range(n_verl):
        B, T = int(RNG.integers(1, 6)), int(RNG.integers(1, 9))
        lengths = [int(RNG.integers(1, T + 1)) for _ in range(B)]
        x = loss_inputs(B, T, lengths, spread=float(RNG.uniform(0.05, 1.0)), seq_adv=bool(RNG.integers(0, 2)))
        name = names[k % len(names)]
        p = {"loss_agg_mode": modes[int(RNG.integers(0, 4))], "clip_ratio_low": float(np.round(RNG.uniform(0.05, 0.3), 3)),
             "clip_ratio_high": float(np.round(RNG.uniform(0.05, 0.4), 3)), "clip_ratio_c": float(np.round(RNG.uniform(1.5, 4), 3))}
        if name == "kl_cov":
            p.update({"kl_cov_ratio": 0.25, "ppo_kl_coef": 0.2})
        isw = t(np.round(RNG.uniform(0.5, 1.5, size=(B, T)), 6)) if RNG.integers(0, 2) else None
        old_key = "rollout_log_prob" if name == "reinforce" else "old_log_prob"
        loss_case(f"random verl {name} #{k}", f"verl.compute_policy_loss_{name}", p, fns[name], x, isw, old_key)
    lts = ["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "vespo", "luspo"]
    for k in range(n_trl):
        B, T = int(RNG.integers(1, 6)), int(RNG.integers(1, 9))
        m = mask_from_lengths([int(RNG.integers(1, T + 1)) for _ in range(B)], T)
        old = t(rnd((B, T), 0.8)) - 1.5
        inputs = {"log_prob": old + t(rnd((B, T), float(RNG.uniform(0.05, 0.6)))), "old_log_prob": old,
                  "advantages": t(rnd((B,), 1.0)) if RNG.integers(0, 3) else t(rnd((B, T), 1.0)), "response_mask": m}
        lt = lts[k % len(lts)]
        p = {"loss_type": lt, "importance_sampling_level": ["token", "sequence"][int(RNG.integers(0, 2))],
             "epsilon": float(np.round(RNG.uniform(0.05, 0.3), 3)), "gradient_accumulation_steps": int(RNG.integers(1, 4))}
        p["steps_per_generation"] = p["gradient_accumulation_steps"] * int(RNG.integers(1, 3))
        if lt == "cispo":
            p["epsilon_high"] = float(np.round(RNG.uniform(0.9, 1.5), 3))
        elif RNG.integers(0, 2):
            p["epsilon_high"] = float(np.round(RNG.uniform(0.1, 0.4), 3))
        if RNG.integers(0, 3) == 0 and lt in ("grpo", "bnpo", "dr_grpo", "dapo", "luspo"):
            p["delta"] = float(np.round(RNG.uniform(1.2, 2.0), 3))
        if RNG.integers(0, 2):
            p["beta"] = float(np.round(RNG.uniform(0.01, 0.2), 3))
            p["use_bias_correction_kl"] = bool(RNG.integers(0, 2))
            inputs["ref_log_prob"] = old + t(rnd((B, T), 0.3))
        if RNG.integers(0, 3) == 0:
            inputs["entropy"] = t(np.round(RNG.uniform(0.0, 3.0, size=(B, T)), 6))
            p["top_entropy_quantile"] = float(np.round(RNG.uniform(0.2, 0.9), 3))
            p["entropy_coef"] = float(np.round(RNG.uniform(0.0, 0.05), 4))
        if RNG.integers(0, 3) == 0:
            inputs["importance_sampling_ratio"] = t(np.round(RNG.uniform(0.6, 1.4, size=(B, T)), 6))
        if RNG.integers(0, 3) == 0:
            p["off_policy_mask_threshold"] = float(np.round(RNG.uniform(0.0, 0.2), 3))
        if lt == "dr_grpo":
            p["max_completion_length"] = int(RNG.integers(T, 3 * T + 1))
        if lt in ("dapo", "cispo", "vespo") and RNG.integers(0, 2):
            p["num_items_in_batch"] = float(m.sum() * RNG.integers(1, 4))
            p["num_processes"] = int(RNG.integers(1, 3))
        add(f"random trl {lt} #{k}", "trl.grpo_loss", p, inputs, trl_loss({k2: lst(v) for k2, v in inputs.items()}, p))


def main():
    advantage_cases()
    policy_loss_cases()
    agg_cases()
    kl_cases()
    whiten_cases()
    trl_cases()
    random_combo_cases()
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        for c in CASES:
            f.write(json.dumps(c) + "\n")
    print(f"wrote {len(CASES)} cases to {os.path.normpath(OUT)}")
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--verl-src", help="verl checkout to cross-check against")
    ap.add_argument("--trl-src", help="unpacked trl wheel to cross-check against")
    args = ap.parse_args()
    bad = 0
    if args.verl_src:
        bad += crosscheck_verl(args.verl_src)
    if args.trl_src:
        bad += crosscheck_trl(args.trl_src)
    if bad:
        raise SystemExit(f"{bad} mismatches against the anchors' own code")


if __name__ == "__main__":
    main()
