"""Peer side (PyTorch eager + transformers) of `cargo xtask bench cpu`, one workload id at a time.

The workloads are those of `docs/benchmarks.md` (random weights: the times do not depend on the
values), with the same sizes as our side (`grpo bench <id>`):

  C1   tiny Qwen2 (d=256, 4 layers, 8 heads / 2 KV heads, MLP 704, vocab 512), 16 prompts x G=8,
       prompt 32 tokens, 64 sampled tokens each (HF `generate`, do_sample, fixed length)
  C2   the same model, one GRPO step: forward + backward + AdamW on 128 sequences x 96 tokens,
       the last 64 of each are the completion the clipped surrogate is averaged over
  C3   Qwen2.5-0.5B sizes in f32: 4 prompts x G=2, prompt 64, 16 sampled tokens
  C3b  the same model, decode-heavy: prompt 16, 64 sampled tokens
  C4   the same model: log-probs of 8 sequences x 128 tokens (forward only, no grad)

Usage: python xtask/peer/bench_cpu.py [--reps N] C1 C2 C3 C3b C4
Prints one JSON object {"torch": ..., "threads": ..., "C1": {"s": median seconds, ...}, ...}.
Threads come from GRPO_BENCH_THREADS (default 2); the caller also sets OMP_NUM_THREADS.
"""
import argparse
import json
import os
import sys
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM


def tiny_model_config():
    return Qwen2Config(
        hidden_size=256, intermediate_size=704, num_hidden_layers=4,
        num_attention_heads=8, num_key_value_heads=2, vocab_size=512,
        max_position_embeddings=1024, tie_word_embeddings=True,
    )


def qwen25_05b_config():
    return Qwen2Config(
        hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
        max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6,
        tie_word_embeddings=True,
    )


def median_seconds(work, reps):
    """One untimed warm-up call, then the median of `reps` timed calls."""
    work()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def sampling(cfg, prompts, group, prompt_len, new_tokens, reps):
    model = Qwen2ForCausalLM(cfg).eval()
    # Each prompt repeated G times: HF generate has no prefix sharing.
    ids = torch.randint(0, cfg.vocab_size - 1, (prompts, prompt_len)).repeat_interleave(group, 0)
    attention = torch.ones_like(ids)

    def work():
        with torch.no_grad():
            model.generate(ids, attention_mask=attention, do_sample=True, pad_token_id=0,
                           max_new_tokens=new_tokens, min_new_tokens=new_tokens)

    s = median_seconds(work, reps)
    n_params = sum(p.numel() for p in model.parameters())
    return {"s": s, "gen_tok_per_s": prompts * group * new_tokens / s, "params": n_params}


def grpo_step(reps):
    cfg = tiny_model_config()
    model = Qwen2ForCausalLM(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    rows, length, prompt_len = 128, 96, 32
    ids = torch.randint(0, cfg.vocab_size, (rows, length))
    # Log-prob position t predicts token t+1: the completion's targets start at prompt_len.
    loss_mask = torch.zeros(rows, length - 1)
    loss_mask[:, prompt_len - 1:] = 1.0
    advantages = torch.randn(rows)[:, None]
    behaviour_logp = torch.full((rows, length - 1), -6.0)

    def work():
        logits = model(ids).logits[:, :-1]
        logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        ratio = torch.exp(logp - behaviour_logp)
        surrogate = torch.min(ratio * advantages, ratio.clamp(0.8, 1.2) * advantages)
        loss = -(surrogate * loss_mask).sum() / loss_mask.sum()
        loss.backward()
        opt.step()
        opt.zero_grad()

    s = median_seconds(work, reps)
    return {"s": s, "tok_per_s": rows * length / s}


def scoring(reps):
    cfg = qwen25_05b_config()
    model = Qwen2ForCausalLM(cfg).eval()
    ids = torch.randint(0, cfg.vocab_size, (8, 128))

    def work():
        with torch.no_grad():
            logits = model(ids).logits[:, :-1]
            torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None])

    s = median_seconds(work, reps)
    return {"s": s, "tok_per_s": 8 * 128 / s}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="timed runs after one warm-up (median)")
    ap.add_argument("workloads", nargs="+")
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("GRPO_BENCH_THREADS", "2")))
    reps = max(1, a.reps)
    big_reps = max(1, min(reps, 2))  # 0.5B workloads take seconds per run
    workloads = {
        "C1": lambda: sampling(tiny_model_config(), 16, 8, 32, 64, reps),
        "C2": lambda: grpo_step(reps),
        "C3": lambda: sampling(qwen25_05b_config(), 4, 2, 64, 16, big_reps),
        "C3b": lambda: sampling(qwen25_05b_config(), 4, 2, 16, 64, big_reps),
        "C4": lambda: scoring(big_reps),
    }
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    for w in a.workloads:
        if w not in workloads:
            sys.exit(f"unknown workload {w!r} (known: {', '.join(workloads)})")
        t0 = time.time()
        torch.manual_seed(0)
        out[w] = workloads[w]()
        print(f"peer {w}: {out[w]} ({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
