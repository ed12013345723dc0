"""Peer side of `cargo xtask bench e2e`: seconds per optimiser step of TRL's GRPOTrainer on CPU.

The workload matches our side (`grpo bench e2e`): the tiny Qwen2 of workload C1 (hidden 256,
4 layers, 8 heads / 2 KV heads, MLP 704, vocab 512, tied embeddings, random weights), a
character-level tokenizer over digits, '+', '=' and space, three-digit addition prompts
("123+456=") with an exact-prefix reward; 16 prompts x G=8 = 128 completions per step, 32 new
tokens each, temperature 1, no KL term (beta = 0), one optimiser step per generation round.
With random weights the reward stays near 0: this measures speed, not learning.

Usage: python xtask/peer/trl_grpo_step.py [STEPS]   (default 4; the first step is the warm-up)
Prints one JSON line; `step_s_median_after_first` is the number the benchmark compares.
Needs torch, transformers, datasets and trl (the benchmark was set up with trl 1.16).
"""
import json
import random
import statistics
import sys
import tempfile
import time

import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

PROMPTS_PER_STEP, GROUP, NEW_TOKENS = 16, 8, 32


def char_tokenizer():
    symbols = [str(d) for d in range(10)] + ["+", "=", " ", "<pad>", "<eos>", "<unk>"]
    vocab = {s: i for i, s in enumerate(symbols)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")  # one token per character
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>",
                                  unk_token="<unk>")
    tok.padding_side = "left"
    return tok, vocab


def addition_rows(n):
    rows = []
    for _ in range(n):
        a, b = random.randint(100, 999), random.randint(100, 999)
        rows.append({"prompt": f"{a}+{b}=", "answer": str(a + b)})
    return rows


def exact_prefix_reward(completions, answer, **_):
    return [float(c.strip().startswith(gold)) for c, gold in zip(completions, answer)]


class StepClock(TrainerCallback):
    """Wall-clock seconds of every optimiser step."""

    def __init__(self):
        self.started = None
        self.seconds = []

    def on_step_begin(self, args, state, control, **kw):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.seconds.append(time.perf_counter() - self.started)


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    torch.manual_seed(0)
    random.seed(0)
    tok, vocab = char_tokenizer()
    cfg = Qwen2Config(
        hidden_size=256, intermediate_size=704, num_hidden_layers=4, num_attention_heads=8,
        num_key_value_heads=2, vocab_size=512, max_position_embeddings=1024,
        tie_word_embeddings=True, pad_token_id=vocab["<pad>"], eos_token_id=vocab["<eos>"],
        bos_token_id=vocab["<eos>"],
    )
    model = Qwen2ForCausalLM(cfg)
    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(), use_cpu=True, bf16=False, report_to=[], save_strategy="no",
        max_steps=steps, logging_steps=1, learning_rate=1e-5, beta=0.0, temperature=1.0,
        # TRL counts completions: 128 per device batch = 16 prompts x 8 generations.
        per_device_train_batch_size=PROMPTS_PER_STEP * GROUP, num_generations=GROUP,
        max_completion_length=NEW_TOKENS, gradient_accumulation_steps=1,
        dataloader_num_workers=0,
    )
    clock = StepClock()
    trainer = GRPOTrainer(model=model, reward_funcs=exact_prefix_reward, args=args,
                          train_dataset=Dataset.from_list(addition_rows(2000)),
                          processing_class=tok, callbacks=[clock])
    t0 = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - t0
    after_first = clock.seconds[1:]
    print(json.dumps({
        "trl": __import__("trl").__version__, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "prompts_per_step": PROMPTS_PER_STEP, "G": GROUP,
        "new_tokens": NEW_TOKENS, "steps": steps, "step_s_all": clock.seconds,
        "step_s_median_after_first": statistics.median(after_first) if after_first else None,
        "total_s": total,
    }))


if __name__ == "__main__":
    main()
