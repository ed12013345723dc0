"""Peer side of CPU workload C5 (docs/benchmarks.md), run by `cargo xtask bench cpu C5`.

LM head of Qwen2.5-0.5B (H=896, V=151936, f32) on 4 x 128 tokens, PyTorch eager: logits
materialised, log_softmax, gather of the target, clipped GRPO surrogate
-min(r*A, clamp(r, 0.8, 1.2)*A) with r = exp(logp - old), token mean, backward to the hidden
states and the LM head weight. Same shapes, loss and old log-probs (-12) as our side
(grpo-kernels/examples/bench_c5.rs).

Extra memory is measured the same way as on our side: the gradient buffers (.grad of the
hidden states and of the weight) are allocated before, the peak resident set (VmHWM) is reset
through /proc/self/clear_refs, and the delta of the peak over the resident set before one
forward+backward is reported; the size of the materialised logits is reported too.

Usage: python xtask/peer/bench_c5.py [--reps N]. Prints one JSON line.
Threads: OMP_NUM_THREADS / GRPO_BENCH_THREADS from the caller (the bench uses 2).
"""
import argparse
import json
import os
import time

import torch

SEQS, TOKENS, H, V = 4, 128, 896, 151936
OLD_LOGP = -12.0


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return None


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    return status_kib("VmRSS:")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3, help="timed runs after one warm-up (median)")
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("GRPO_BENCH_THREADS", "2")))
    torch.manual_seed(5)
    t = SEQS * TOKENS
    x = (torch.rand(t, H) * 2 - 1).requires_grad_(True)
    w = ((torch.rand(V, H) * 2 - 1) * 0.02).requires_grad_(True)
    y = torch.randint(0, V, (t,))
    adv = (torch.rand(SEQS) * 2 - 1).repeat_interleave(TOKENS)
    old = torch.full((t,), OLD_LOGP)
    x.grad = torch.zeros_like(x)
    w.grad = torch.zeros_like(w)

    def step():
        logits = x @ w.t()
        lp = torch.log_softmax(logits, -1).gather(-1, y[:, None])[:, 0]
        r = torch.exp(lp - old)
        loss = -torch.min(r * adv, r.clamp(0.8, 1.2) * adv).mean()
        loss.backward()
        return loss.item()

    step()
    runs = []
    delta = None
    loss = None
    for rep in range(max(1, a.reps)):
        before = reset_peak_rss() if rep == 0 else None
        t0 = time.perf_counter()
        loss = step()
        runs.append(time.perf_counter() - t0)
        if before is not None:
            peak = status_kib("VmHWM:")
            if peak is not None:
                delta = (peak - before) * 1024
    s = sorted(runs)[len(runs) // 2]
    print(json.dumps({
        "workload": "c5", "s": s, "runs": runs, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "peak_rss_delta_bytes": delta,
        "logits_bytes": 4 * t * V, "gflop": 6 * t * H * V / 1e9, "loss": loss,
    }))


if __name__ == "__main__":
    main()
