"""Peer side (PyTorch eager + transformers) of `cargo xtask bench cpu`, by workload id.

Reuses the workload functions of shared/bench/peer_bench_cpu.py (imported, not copied) and adds
C3b (decode-heavy generation on Qwen2.5-0.5B sizes), which that script does not have.

Usage: python scripts/bench_cpu_peer.py --peer-dir ../shared/bench [--reps N] C1 C2 C3 C3b C4
Prints one JSON object {"torch": ..., "threads": ..., "C1": {"s": median, ...}, ...}.
Threads: set OMP_NUM_THREADS / torch threads from the caller (cargo xtask bench uses 2).
"""
import argparse
import json
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer-dir", required=True, help="folder holding peer_bench_cpu.py")
    ap.add_argument("--reps", type=int, default=3, help="timed runs after one warm-up (median)")
    ap.add_argument("workloads", nargs="+")
    a = ap.parse_args()
    sys.path.insert(0, a.peer_dir)
    import torch
    threads = int(os.environ.get("GRPO_BENCH_THREADS", "2"))
    torch.set_num_threads(threads)
    import peer_bench_cpu as P  # noqa: E402 (after sys.path)

    reps = max(1, a.reps)
    small_reps = max(1, min(reps, 2))  # 0.5B workloads: each run takes seconds
    runs = {
        "C1": lambda: P.gen(P.tiny_cfg(), 16, 8, 32, 64, reps),
        "C2": P.tiny_train,  # fixed 3 reps in the shared script
        "C3": lambda: P.gen(P.small_cfg(), 4, 2, 64, 16, small_reps),
        "C3b": lambda: P.gen(P.small_cfg(), 4, 2, 16, 64, small_reps),
        "C4": P.small_score,  # fixed 2 reps in the shared script
    }
    res = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    for w in a.workloads:
        if w not in runs:
            sys.exit(f"unknown workload {w!r} (known: {', '.join(runs)})")
        t0 = time.time()
        torch.manual_seed(0)
        res[w] = runs[w]()
        print(f"peer {w}: {res[w]} ({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
