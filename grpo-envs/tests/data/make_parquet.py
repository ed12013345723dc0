#!/usr/bin/env python3
"""Writes the small Parquet fixtures that grpo-envs' loader tests read.

The files mirror how Hugging Face `datasets` stores a split (pyarrow writer,
plain string columns, a `huggingface` schema-metadata entry) and are built from
the first rows of the public JSONL sets in data/ (the repository root), so the Rust tests can
check that a Parquet row equals the JSONL line it came from:

    gsm8k_test_head.{snappy,zstd}.parquet   first 50 rows of gsm8k/test.jsonl
                                            (question, answer: string)
    humaneval_head.{snappy,zstd}.parquet    first 20 rows of HumanEval.jsonl
                                            (task_id, prompt, canonical_solution,
                                             test, entry_point: string)
    gsm8k_chat.parquet + gsm8k_chat.jsonl   10 GSM8K rows with nested and typed
                                            columns (prompt, messages: list<struct<
                                            role, content>>, tags: list<string>, meta:
                                            struct, idx: int64, score: double with
                                            nulls, solved: bool), row groups of 4
                                            rows; the .jsonl is the same rows as
                                            JSON, written from the same dicts.

Usage (pyarrow needed; `cargo xtask fixtures parquet` runs this):

    python grpo-envs/tests/data/make_parquet.py [--shared DIR]   # (re)write
    python grpo-envs/tests/data/make_parquet.py --check          # read back, compare
"""

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SHARED = HERE.parents[2] / "data"

GSM8K_ROWS = 50
HUMANEVAL_ROWS = 20
CHAT_ROWS = 10


def head_jsonl(path, n):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
            if len(rows) == n:
                break
    return rows


def hf_metadata(columns):
    """The `huggingface` schema metadata `datasets` writes (features only)."""
    feats = {c: {"dtype": "string", "_type": "Value"} for c in columns}
    return {b"huggingface": json.dumps({"info": {"features": feats}}).encode()}


def string_table(pa, rows, columns):
    schema = pa.schema([(c, pa.string()) for c in columns], metadata=hf_metadata(columns))
    return pa.Table.from_pylist([{c: r[c] for c in columns} for r in rows], schema=schema)


def chat_rows(gsm):
    out = []
    for i, r in enumerate(gsm[:CHAT_ROWS]):
        final = r["answer"].rsplit("####", 1)[1].strip()
        out.append({
            "question": r["question"],
            "answer": r["answer"],
            # TRL's conversational prompt format
            "prompt": [
                {"role": "system", "content": "Solve the problem; end with #### and the number."},
                {"role": "user", "content": r["question"]},
            ],
            "messages": [
                {"role": "user", "content": r["question"]},
                {"role": "assistant", "content": r["answer"]},
            ],
            "tags": ["gsm8k"] + (["long"] if len(r["question"]) > 200 else []),
            "meta": {"source": "gsm8k/test.jsonl", "line": i + 1},
            "idx": i,
            # every third score is null: nullable float column
            "score": None if i % 3 == 0 else round(i / 7, 6),
            "solved": i % 2 == 0,
            "final": final,
        })
    return out


def chat_table(pa, rows):
    msg = pa.struct([("role", pa.string()), ("content", pa.string())])
    schema = pa.schema([
        ("question", pa.string()),
        ("answer", pa.string()),
        ("prompt", pa.list_(msg)),
        ("messages", pa.list_(msg)),
        ("tags", pa.list_(pa.string())),
        ("meta", pa.struct([("source", pa.string()), ("line", pa.int32())])),
        ("idx", pa.int64()),
        ("score", pa.float64()),
        ("solved", pa.bool_()),
        ("final", pa.string()),
    ])
    return pa.Table.from_pylist(rows, schema=schema)


def targets(shared):
    gsm = head_jsonl(shared / "gsm8k" / "test.jsonl", GSM8K_ROWS)
    he = head_jsonl(shared / "humaneval" / "HumanEval.jsonl", HUMANEVAL_ROWS)
    gsm_cols = ["question", "answer"]
    he_cols = ["task_id", "prompt", "canonical_solution", "test", "entry_point"]
    out = []
    for codec in ["snappy", "zstd"]:
        out.append((f"gsm8k_test_head.{codec}.parquet", gsm, gsm_cols, codec, None))
        out.append((f"humaneval_head.{codec}.parquet", he, he_cols, codec, None))
    return out, chat_rows(gsm)


def write(shared):
    import pyarrow as pa
    import pyarrow.parquet as pq

    plain, chat = targets(shared)
    for name, rows, cols, codec, _ in plain:
        pq.write_table(string_table(pa, rows, cols), HERE / name, compression=codec)
    pq.write_table(chat_table(pa, chat), HERE / "gsm8k_chat.parquet",
                   compression="snappy", row_group_size=4,
                   write_statistics=False)  # string min/max stats would double the size
    with open(HERE / "gsm8k_chat.jsonl", "w", encoding="utf-8") as f:
        for r in chat:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    total = 0
    for p in sorted(HERE.glob("*.parquet")) + [HERE / "gsm8k_chat.jsonl"]:
        total += p.stat().st_size
        print(f"wrote {p.name}: {p.stat().st_size} bytes")
    print(f"total {total} bytes")


def check(shared):
    import pyarrow.parquet as pq

    plain, chat = targets(shared)
    bad = 0
    for name, rows, cols, codec, _ in plain:
        f = pq.ParquetFile(HERE / name)
        got = f.read().to_pylist()
        want = [{c: r[c] for c in cols} for r in rows]
        used = f.metadata.row_group(0).column(0).compression.lower()
        if got != want or used != codec:
            print(f"MISMATCH {name} (codec {used})")
            bad += 1
    got = pq.read_table(HERE / "gsm8k_chat.parquet").to_pylist()
    with open(HERE / "gsm8k_chat.jsonl", encoding="utf-8") as f:
        twin = [json.loads(l) for l in f if l.strip()]
    if got != chat or twin != chat:
        print("MISMATCH gsm8k_chat.parquet / gsm8k_chat.jsonl")
        bad += 1
    if bad:
        sys.exit(f"{bad} fixture(s) differ from their source rows; rerun without --check")
    print("parquet fixtures match their source rows")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED,
                    help="the public data directory (default: the repository's data/)")
    ap.add_argument("--check", action="store_true", help="read the fixtures back and compare")
    args = ap.parse_args()
    if not (args.shared / "gsm8k" / "test.jsonl").exists():
        sys.exit(f"{args.shared}/gsm8k/test.jsonl not found (pass --shared DIR)")
    if args.check:
        check(args.shared)
    else:
        write(args.shared)


if __name__ == "__main__":
    main()
