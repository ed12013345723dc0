#!/usr/bin/env python3
"""Generate the transformers parity fixtures for grpo-model (the only Python in grpo-rs).

Usage (from the repository root, with a Python that has torch + transformers + tokenizers):

    python scripts/make_fixtures.py                 # regenerate fixtures/ and MANIFEST.json
    python scripts/make_fixtures.py --check         # verify fixtures/ against MANIFEST.json (no torch)
    python scripts/make_fixtures.py --check-saved   # re-save every fixture model with OUR code
                                                    # (cargo example `resave`), load the copy in
                                                    # transformers and compare log-probs; also runs
                                                    # `grpo score` on it when GRPO_BIN is set

What it writes (all small; tiny random models):

    fixtures/models/<name>/           config.json, generation_config.json, weights (safetensors)
    fixtures/models/<name>/parity.json  sequences, per-token log-probs, entropies, the GRPO-style
                                       loss, d loss / d logprob and d loss / d entropy used, greedy
                                       generate outputs
    fixtures/models/<name>/grads.safetensors  every parameter gradient (f32, HF names)
    fixtures/tokenizer/               a small byte-level BPE tokenizer.json (Qwen2-style pre-tokenizer)
                                      plus encode.json (ids produced by transformers)
    fixtures/chat/<name>/             tokenizer.json + tokenizer_config.json carrying the Qwen2.5 or
                                      Llama-3 chat template, and rendered.json (transformers' output)
    fixtures/MANIFEST.json            sha256 of every file + generator versions

The GRPO-style loss is  L = -(1/N) sum_i A_i sum_t logp_it  -  0.01 (1/N) sum_i sum_t H_it
with N the total number of completion tokens; d L / d logp and d L / d H are stored explicitly.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures"
ENTROPY_COEF = 0.01

QWEN25_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

CHAT_CASES = [
    {"messages": [{"role": "user", "content": "What is 2+2?"}], "add_generation_prompt": True},
    {
        "messages": [
            {"role": "system", "content": "You are a careful math tutor."},
            {"role": "user", "content": "  Solve x + 3 = 5.  "},
            {"role": "assistant", "content": "x = 2"},
            {"role": "user", "content": "Thanks! Ünïcödé 数学 ✓"},
        ],
        "add_generation_prompt": True,
    },
    {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!\nHow can I help?"},
        ],
        "add_generation_prompt": False,
    },
]

QWEN_TOOL_CASES = [
    {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": {"city": "Paris", "unit": "celsius", "note": "<&'>"},
                        },
                    }
                ],
            },
            {"role": "tool", "content": "{\"temp\": 21}"},
            {"role": "tool", "content": "sunny"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Get the weather, e.g. “today”",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                        "required": ["city"],
                    },
                },
            }
        ],
        "add_generation_prompt": True,
    }
]

ENCODE_TEXTS = [
    "Hello world! 123 + 4567 = 4690",
    "  leading spaces and\ttabs\nnewlines\n\n",
    "Ünïcödé: 数学 ✓ 🚀 don't we'll",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
]

# Tiny architectures: (name, model class name, config kwargs, options)
MODELS = [
    (
        "llama_sharded",
        "llama",
        dict(
            vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
            rms_norm_eps=1e-5, tie_word_embeddings=False,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        ),
        {"shard": True},
    ),
    (
        "llama_tied_oldrope",
        "llama",
        dict(
            vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=64,
            rms_norm_eps=1e-6, tie_word_embeddings=True,
            rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
        ),
        {"old_rope": True},
    ),
    (
        "qwen2_bf16_tied",
        "qwen2",
        dict(
            vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
            rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        ),
        {"bf16": True},
    ),
    (
        "qwen3",
        "qwen3",
        dict(
            vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
            rms_norm_eps=1e-6, tie_word_embeddings=False, use_sliding_window=False,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        ),
        {},
    ),
]

SEQUENCES = [
    # (prompt ids, completion ids, advantage)
    ([1, 5, 9, 13, 2], [7, 7, 30, 41, 63, 0], 1.0),
    ([3], [4, 5, 6], -0.5),
    ([10, 20, 30, 40, 50, 60, 11, 21, 31], [12, 22, 32, 42], 0.25),
    ([1, 5, 9, 13, 2], [8, 8, 31], -0.75),
]
GENERATE_PROMPTS = [[1, 5, 9, 13, 2], [3], [10, 20, 30, 40, 50, 60, 11, 21, 31]]
GENERATE_NEW_TOKENS = 8


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")


def randomize(model, torch, seed):
    """Re-initialise with a larger scale than HF's 0.02 so log-probs and gradients are far from trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / fan_in ** 0.5))


def seq_logprobs(model, torch, prompt, completion):
    ids = torch.tensor([prompt + completion])
    logits = model(input_ids=ids).logits[0].float()  # [T, V]
    p = len(prompt)
    rows = logits[p - 1 : p - 1 + len(completion)]
    logp_all = torch.log_softmax(rows, dim=-1)
    tgt = torch.tensor(completion)
    logp = logp_all.gather(1, tgt[:, None])[:, 0]
    ent = -(logp_all.exp() * logp_all).sum(-1)
    return logp, ent


def make_model_fixture(name, kind, cfg_kwargs, opts, torch, transformers):
    out = FIX / "models" / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cls_cfg = {"llama": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config,
               "qwen3": transformers.Qwen3Config}[kind]
    cls_model = {"llama": transformers.LlamaForCausalLM, "qwen2": transformers.Qwen2ForCausalLM,
                 "qwen3": transformers.Qwen3ForCausalLM}[kind]
    cfg = cls_cfg(bos_token_id=1, eos_token_id=2, pad_token_id=0, **cfg_kwargs)
    torch.manual_seed(0)
    model = cls_model(cfg)
    randomize(model, torch, seed=abs(hash(name)) % (2**31) if False else len(name) * 7919)
    if opts.get("bf16"):
        # Round the weights to bf16 so the stored file is exact; compute in f32.
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
    save_kwargs = {}
    if opts.get("shard"):
        save_kwargs["max_shard_size"] = "12KB"
    if opts.get("bf16"):
        model.to(torch.bfloat16).save_pretrained(out, **save_kwargs)
        model.to(torch.float32)
    else:
        model.save_pretrained(out, **save_kwargs)
    if opts.get("old_rope"):
        cfg_path = out / "config.json"
        c = json.loads(cfg_path.read_text())
        theta = c.pop("rope_parameters")["rope_theta"]
        c["rope_theta"] = theta
        c["rope_scaling"] = None
        write_json(cfg_path, c)
    # Reload exactly what is on disk (tests what transformers reads from the stored config/dtype).
    model = cls_model.from_pretrained(out, dtype=torch.float32, attn_implementation="eager")
    model.eval()

    n_tok = sum(len(c) for _, c, _ in SEQUENCES)
    logps, ents, dlogp, dent = [], [], [], []
    loss = 0.0
    model.zero_grad()
    for prompt, completion, adv in SEQUENCES:
        lp, en = seq_logprobs(model, torch, prompt, completion)
        l = -(adv / n_tok) * lp.sum() - (ENTROPY_COEF / n_tok) * en.sum()
        l.backward()
        loss += l.item()
        logps.append(lp.tolist())
        ents.append(en.tolist())
        dlogp.append([-adv / n_tok] * len(completion))
        dent.append([-ENTROPY_COEF / n_tok] * len(completion))
    grads = {}
    for pname, p in model.named_parameters():
        grads[pname] = p.grad.detach().clone().contiguous()
    from safetensors.torch import save_file
    save_file(grads, str(out / "grads.safetensors"))

    gens = []
    with torch.no_grad():
        for prompt in GENERATE_PROMPTS:
            ids = torch.tensor([prompt])
            res = model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=GENERATE_NEW_TOKENS,
                do_sample=False, eos_token_id=None, pad_token_id=0,
            )
            gen = res[0, len(prompt):].tolist()
            # log-probs of the greedy tokens (the engine's parity test can check them too)
            lp, _ = seq_logprobs(model, torch, prompt, gen)
            gens.append({"prompt_ids": prompt, "greedy_ids": gen, "greedy_logprobs": lp.tolist()})

    write_json(out / "parity.json", {
        "architecture": kind,
        "loss_formula": "L = -(1/N) sum_i A_i sum_t logp_it - 0.01 (1/N) sum_it H_it",
        "sequences": [{"prompt_ids": p, "completion_ids": c, "advantage": a} for p, c, a in SEQUENCES],
        "logprobs": logps,
        "entropy": ents,
        "dlogp": dlogp,
        "dentropy": dent,
        "loss": loss,
        "generate": gens,
    })
    print(f"[fixtures] {name}: loss {loss:.6f}, {sum(p.numel() for p in model.parameters())} params")


def make_tokenizer_fixture(transformers):
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, Regex
    out = FIX / "tokenizer"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tok = Tokenizer(models.BPE())
    qwen2_pat = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(qwen2_pat), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>",
                "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    corpus = [
        "The quick brown fox jumps over the lazy dog. " * 3,
        "What is 2+2? The answer is 4. Solve x + 3 = 5, so x = 2.",
        "Hello world! Thanks for the help. How can I help you today?",
        "def add(a, b):\n    return a + b\n",
        "Weather in Paris is sunny; temperature 21 degrees celsius.",
    ]
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.save(str(out / "tokenizer.json"))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_file=str(out / "tokenizer.json"))
    enc = [{"text": t, "ids": fast.encode(t, add_special_tokens=False),
            "decoded": fast.decode(fast.encode(t, add_special_tokens=False))} for t in ENCODE_TEXTS]
    write_json(out / "encode.json", enc)
    return out / "tokenizer.json"


def make_chat_fixture(name, template, bos, eos, tokenizer_json, cases, transformers):
    out = FIX / "chat" / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy(tokenizer_json, out / "tokenizer.json")
    write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos,
        "eos_token": eos,
        "pad_token": "<|endoftext|>",
        "model_max_length": 4096,
        "add_bos_token": False,
        "chat_template": template,
    })
    tok = transformers.AutoTokenizer.from_pretrained(str(out))
    rendered = []
    for case in cases:
        kw = {}
        if "tools" in case:
            kw["tools"] = case["tools"]
        text = tok.apply_chat_template(case["messages"], tokenize=False,
                                       add_generation_prompt=case["add_generation_prompt"], **kw)
        ids = tok.apply_chat_template(case["messages"], tokenize=True, return_dict=False,
                                      add_generation_prompt=case["add_generation_prompt"], **kw)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        rendered.append({**case, "rendered": text, "ids": list(ids)})
    write_json(out / "rendered.json", rendered)


def write_manifest(versions):
    files = {}
    for p in sorted(FIX.rglob("*")):
        if p.is_file() and p.name != "MANIFEST.json":
            files[str(p.relative_to(FIX))] = sha256(p)
    write_json(FIX / "MANIFEST.json", {"generator": "scripts/make_fixtures.py", "versions": versions,
                                       "files": files})
    total = sum((FIX / f).stat().st_size for f in files)
    print(f"[fixtures] {len(files)} files, {total / 1024:.0f} KiB")


def check_manifest():
    m = json.loads((FIX / "MANIFEST.json").read_text())
    bad = []
    for rel, digest in m["files"].items():
        p = FIX / rel
        if not p.exists():
            bad.append(f"missing {rel}")
        elif sha256(p) != digest:
            bad.append(f"hash differs: {rel}")
    listed = set(m["files"])
    for p in FIX.rglob("*"):
        if p.is_file() and p.name != "MANIFEST.json" and str(p.relative_to(FIX)) not in listed:
            bad.append(f"not in manifest: {p.relative_to(FIX)}")
    if bad:
        print("\n".join(bad))
        sys.exit(1)
    print(f"[fixtures] manifest ok ({len(listed)} files)")


def check_saved(torch, transformers):
    """Save every fixture model with our code, load the copy in transformers, compare log-probs."""
    worst = 0.0
    subprocess.run(["cargo", "build", "-q", "-p", "grpo-model", "--example", "resave"], check=True, cwd=ROOT)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    resave = target / "debug" / "examples" / "resave"
    with tempfile.TemporaryDirectory() as tmp:
        for name, kind, _, _ in MODELS:
            src = FIX / "models" / name
            for variant in ("f32", "bf16", "f16", "sharded"):
                dst = Path(tmp) / f"{name}-{variant}"
                cmd = [str(resave), str(src), str(dst), variant]
                subprocess.run(cmd, check=True, cwd=ROOT)
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    dst, dtype=torch.float32, attn_implementation="eager")
                ref = transformers.AutoModelForCausalLM.from_pretrained(
                    src, dtype=torch.float32, attn_implementation="eager")
                if variant in ("bf16", "f16"):
                    low = torch.bfloat16 if variant == "bf16" else torch.float16
                    with torch.no_grad():
                        for p in ref.parameters():
                            p.copy_(p.to(low).to(torch.float32))
                with torch.no_grad():
                    for prompt, completion, _ in SEQUENCES:
                        a, _ = seq_logprobs(model, torch, prompt, completion)
                        b, _ = seq_logprobs(ref, torch, prompt, completion)
                        d = (a - b).abs().max().item()
                        worst = max(worst, d)
                        if d > 1e-5:
                            raise SystemExit(f"{name}/{variant}: saved copy differs by {d}")
                gbin = os.environ.get("GRPO_BIN")
                if gbin and variant == "f32":
                    inp = Path(tmp) / "in.jsonl"
                    inp.write_text("".join(json.dumps({"prompt_ids": p, "completion_ids": c}) + "\n"
                                           for p, c, _ in SEQUENCES))
                    res = subprocess.run([gbin, "score", "--model", str(dst), "--input", str(inp)],
                                         check=True, capture_output=True, text=True)
                    parity = json.loads((src / "parity.json").read_text())
                    for line, want in zip(res.stdout.splitlines(), parity["logprobs"]):
                        got = json.loads(line)["logprobs"]
                        d = max(abs(x - y) for x, y in zip(got, want))
                        worst = max(worst, d)
                        if d > 2e-4:
                            raise SystemExit(f"{name}: grpo score differs by {d}")
                print(f"[check-saved] {name}/{variant}: transformers loads our copy, log-probs match")
        # A character-level tokenizer built by us loads in transformers and encodes the same.
        tdir = Path(tmp) / "char-tokenizer"
        texts = ["12+34=46", "hello world?\n", "<|im_start|>user\nx*y<|im_end|>", "UNKNOWN ü"]
        res = subprocess.run([str(resave), "--char-tokenizer", str(tdir), *texts],
                             check=True, capture_output=True, text=True)
        lines = [json.loads(l) for l in res.stdout.splitlines()]
        tok = transformers.AutoTokenizer.from_pretrained(str(tdir))
        for rec in lines[:-1]:
            got = tok.encode(rec["text"], add_special_tokens=True)
            if got != rec["ids"]:
                raise SystemExit(f"char tokenizer: transformers encodes {rec['text']!r} as {got}, we as {rec['ids']}")
            if tok.decode(got) != rec["decoded"]:
                raise SystemExit(f"char tokenizer: decode differs for {rec['text']!r}")
        chat = tok.apply_chat_template([{"role": "user", "content": "2+2=?"}], tokenize=True,
                                       add_generation_prompt=True, return_dict=False)
        if hasattr(chat, "keys"):
            chat = chat["input_ids"]
        if list(chat) != lines[-1]["chat_ids"]:
            raise SystemExit(f"char tokenizer chat ids differ: {list(chat)} vs {lines[-1]['chat_ids']}")
        print("[check-saved] char-level tokenizer: transformers loads it, same ids and chat ids")
    print(f"[check-saved] ok, max |diff| {worst:.2e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="verify fixtures against MANIFEST.json")
    ap.add_argument("--check-saved", action="store_true",
                    help="save fixture models with our code and load them in transformers")
    args = ap.parse_args()
    if args.check:
        check_manifest()
        return
    import torch
    import transformers
    torch.use_deterministic_algorithms(True)
    if args.check_saved:
        check_saved(torch, transformers)
        return
    import tokenizers
    import safetensors
    FIX.mkdir(exist_ok=True)
    for name, kind, cfg, opts in MODELS:
        make_model_fixture(name, kind, cfg, opts, torch, transformers)
    tj = make_tokenizer_fixture(transformers)
    make_chat_fixture("qwen2.5", QWEN25_TEMPLATE, None, "<|im_end|>", tj,
                      CHAT_CASES + QWEN_TOOL_CASES, transformers)
    make_chat_fixture("llama3", LLAMA3_TEMPLATE, "<|begin_of_text|>", "<|eot_id|>", tj,
                      CHAT_CASES, transformers)
    write_manifest({"torch": torch.__version__, "transformers": transformers.__version__,
                    "tokenizers": tokenizers.__version__, "safetensors": safetensors.__version__,
                    "python": sys.version.split()[0]})


if __name__ == "__main__":
    main()
