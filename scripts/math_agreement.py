#!/usr/bin/env python3
"""Side-by-side agreement with each anchor's expected verdicts: our math
verifier (grpo-rewards) vs Math-Verify 0.8.0 (PyPI), per suite.

Usage:
  cargo build -p grpo-rewards --example math_jsonl
  python3 scripts/math_agreement.py [--ours PATH_TO_math_jsonl] [--extract MIRRORS_DIR]

Suites (cases with the anchor's expected verdict, committed under
grpo-rewards/tests/data/agreement/ with their source commits):
- math_verify: Math-Verify 0.8.0's own tests/ (the `verify` cases of
  tests/data/math_verify_suite.jsonl, see scripts/math_verify_suite.py);
- lighteval: tests/unit/metrics/test_extractive_match.py of
  huggingface/lighteval (multilingual prefixes, letters, math);
- hendrycks: modeling/math_equivalence_test.py of hendrycks/math
  (`is_equiv` on bare answers);
- nemo_skills: tests/test_math_equal.py of NVIDIA/NeMo-Skills (`math_equal`
  pairs, both directions; words and primed symbols such as `odd`, `f'`).
- verl: the end-to-end `is_equiv` cases on boxed answers of
  tests/utils/reward_score/test_numeric_canonicalization_on_cpu.py
  (volcengine/verl; its pinned b178a3cd has no math-equivalence unit test).
hendrycks and nemo_skills run with their percent rule (a bare number
matches a percent: `percent_accepts_bare`) on our side.
`--extract MIRRORS_DIR` (git mirrors `<owner>+<repo>/repo`) rewrites the
lighteval, hendrycks, nemo_skills and verl case files from the anchors' test sources (their
parametrize tables are evaluated as data; lighteval itself is not needed).

Each side runs the suite's configuration: its extraction targets, precision
and, for us, its language (Math-Verify has no language option and runs its
English patterns; lighteval's NativeLetters are Math-Verify's
StringExtractionConfig with the first four letters).
"""

import argparse
import ast
import json
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DATA = os.path.join(ROOT, "grpo-rewards", "tests", "data")
AGREE = os.path.join(DATA, "agreement")
LIGHTEVAL = ("huggingface/lighteval", "3fd15266bc8448b797e61462d293aa3fd40b3580",
             "tests/unit/metrics/test_extractive_match.py")
HENDRYCKS = ("hendrycks/math", "5f3bf91d13367550bed100240554fd11c25abe48",
             "modeling/math_equivalence_test.py")


def git_show(mirrors, repo, commit, path):
    git_dir = os.path.join(mirrors, repo.replace("/", "+"), "repo")
    return subprocess.run(["git", "--git-dir", git_dir, "show", f"{commit}:{path}"],
                          check=True, capture_output=True, text=True).stdout


class _Lang:
    def __getattr__(self, name):
        return name.lower()


def _decorated_params(fn):
    for d in fn.decorator_list:
        if isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "parametrize":
            names = [n.strip() for n in ast.literal_eval(d.args[0]).split(",")]
            rows = eval(compile(ast.Expression(d.args[1]), "<params>", "eval"),
                        {"Language": _Lang(), "math": __import__("math")})
            return names, rows
    return None, None


def extract_lighteval(mirrors):
    repo, commit, path = LIGHTEVAL
    tree = ast.parse(git_show(mirrors, repo, commit, path))
    out = []
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef) or not fn.name.startswith("test_"):
            continue
        names, rows = _decorated_params(fn)
        if names is None:
            continue
        # the test's compare_strings call: match_types keyword and precision
        call = next(n for n in ast.walk(fn) if isinstance(n, ast.Call)
                    and getattr(n.func, "id", "") == "compare_strings")
        kw = {k.arg: k.value for k in call.keywords}
        for i, row in enumerate(rows):
            p = dict(zip(names, row))
            targets = p.get("match_type")
            if targets is None:
                targets = ast.literal_eval(kw["match_types"]) if "match_types" in kw else ["latex", "expr"]
            precision = p.get("precision", 6)
            out.append({"id": f"{path}::{fn.name}[{i}]", "source": f"{repo}@{commit} {path}",
                        "gold": p["gold"], "pred": p["pred"], "expected": bool(p["expected"]),
                        "targets": targets, "language": p.get("language", "english"),
                        "float_rounding": precision, "boxed_match_priority": 55})
    return out


def extract_hendrycks(mirrors):
    repo, commit, path = HENDRYCKS
    tree = ast.parse(git_show(mirrors, repo, commit, path))
    out = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef) or not fn.name.startswith("test_"):
            continue
        vals = {}
        expected = None
        for n in ast.walk(fn):
            if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name):
                vals[n.targets[0].id] = ast.literal_eval(n.value)
            if isinstance(n, ast.Call) and getattr(n.func, "attr", "") in ("assertTrue", "assertFalse"):
                expected = n.func.attr == "assertTrue"
        out.append({"id": f"{path}::{fn.name}", "source": f"{repo}@{commit} {path}",
                    "gold": vals["test_in"], "pred": vals["test_out"], "expected": expected,
                    "targets": ["latex", "expr"], "language": "english", "float_rounding": 6,
                    "boxed_match_priority": 0,
                    # hendrycks' is_equiv deletes `\%`: its percent semantics
                    "percent_accepts_bare": True})
    return out


NEMO = ("NVIDIA/NeMo-Skills", "0b012df8a09cd4730d31b16e90a0d8f13d145fb8", "tests/test_math_equal.py")


def extract_nemo(mirrors):
    """NeMo-Skills' math_equal pairs; each is tested in both directions."""
    repo, commit, path = NEMO
    tree = ast.parse(git_show(mirrors, repo, commit, path))
    out = []
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef) or not fn.name.startswith("test_"):
            continue
        _, rows = _decorated_params(fn)
        expected = fn.name == "test_correct_examples"
        for i, (a, b) in enumerate(rows):
            for d, (g, p) in enumerate([(a, b), (b, a)]):
                out.append({"id": f"{path}::{fn.name}[{i}]{'<-' if d else '->'}",
                            "source": f"{repo}@{commit} {path}", "gold": str(g), "pred": str(p),
                            "expected": expected, "targets": ["latex", "expr"], "language": "english",
                            "float_rounding": 6, "boxed_match_priority": 0,
                            # NeMo-Skills accepts a bare number for a percent
                            "percent_accepts_bare": True})
    return out


VERL = ("volcengine/verl", "d69068d2a32b985e759049da6f801a039b94b31b",
        "tests/utils/reward_score/test_numeric_canonicalization_on_cpu.py")


def extract_verl(mirrors):
    """verl's end-to-end `is_equiv` cases on boxed answers (its math reward)."""
    repo, commit, path = VERL
    tree = ast.parse(git_show(mirrors, repo, commit, path))
    out = []
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef) and fn.name == "test_is_equiv_boxed":
            _, rows = _decorated_params(fn)
            for i, (gt, pred) in enumerate(rows):
                out.append({"id": f"{path}::{fn.name}[{i}]", "source": f"{repo}@{commit} {path}",
                            "gold": gt, "pred": pred, "expected": True, "targets": ["latex", "expr"],
                            "language": "english", "float_rounding": 6, "boxed_match_priority": 0})
    return out


def load(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def math_verify_suite():
    out = []
    for c in load(os.path.join(DATA, "math_verify_suite.jsonl")):
        if c["kind"] != "verify":
            continue
        out.append({"id": c["id"], "gold": c["gold"], "pred": c["pred"], "expected": c["expected"],
                    "targets": c["targets"], "language": "english",
                    "float_rounding": c["float_rounding"], "strict": c["strict"],
                    "allow_set_relation_comp": c["allow_set_relation_comp"],
                    "boxed_match_priority": c["boxed_match_priority"], "mv_default_parse": c["targets"] is None})
    return out


def our_options(c):
    targets = c["targets"] or ["latex", "expr"]
    o = {"float_rounding": c["float_rounding"], "strict": c.get("strict", True),
         "allow_set_relation_comp": c.get("allow_set_relation_comp", False),
         "boxed_match_priority": c["boxed_match_priority"], "language": c["language"]}
    if c.get("percent_accepts_bare"):
        o["percent_accepts_bare"] = True
    if "NativeLetters" in targets:
        o["letters"] = ["A", "B", "C", "D"]
        o["letters_without_anchor"] = True
    t = ["letters" if x == "NativeLetters" else x for x in targets]
    o["gold_extraction"] = t
    o["pred_extraction"] = t
    return o


def run_ours(binary, cases):
    lines = "".join(json.dumps({"gold": c["gold"], "pred": c["pred"], "options": our_options(c)}) + "\n"
                    for c in cases)
    r = subprocess.run([binary], input=lines, capture_output=True, text=True, check=True)
    outs = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(outs) == len(cases), (len(outs), len(cases))
    return [bool(o.get("correct", False)) for o in outs]


def run_math_verify(cases):
    from math_verify import (ExprExtractionConfig, LatexExtractionConfig, StringExtractionConfig,
                             parse, verify)
    res = []
    for c in cases:
        try:
            if c.get("mv_default_parse"):
                g, p = parse(c["gold"]), parse(c["pred"])
            else:
                cfgs = []
                for t in c["targets"]:
                    if t == "latex":
                        cfgs.append(LatexExtractionConfig(boxed_match_priority=c["boxed_match_priority"]))
                    elif t == "expr":
                        cfgs.append(ExprExtractionConfig())
                    else:
                        cfgs.append(StringExtractionConfig(strings=("A", "B", "C", "D")))
                g, p = parse(c["gold"], cfgs), parse(c["pred"], cfgs)
            res.append(bool(verify(g, p, float_rounding=c["float_rounding"], strict=c.get("strict", True),
                                   allow_set_relation_comp=c.get("allow_set_relation_comp", False))))
        except Exception:  # Math-Verify raising counts as a false verdict
            res.append(False)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                                                   "debug", "examples", "math_jsonl"))
    ap.add_argument("--extract", metavar="MIRRORS_DIR")
    a = ap.parse_args()
    os.makedirs(AGREE, exist_ok=True)
    if a.extract:
        for name, fn in (("lighteval", extract_lighteval), ("hendrycks", extract_hendrycks),
                         ("nemo_skills", extract_nemo), ("verl", extract_verl)):
            with open(os.path.join(AGREE, f"{name}.jsonl"), "w") as f:
                for c in fn(a.extract):
                    f.write(json.dumps(c, ensure_ascii=False) + "\n")
    suites = {"math_verify": math_verify_suite(),
              "lighteval": load(os.path.join(AGREE, "lighteval.jsonl")),
              "hendrycks": load(os.path.join(AGREE, "hendrycks.jsonl")),
              "nemo_skills": load(os.path.join(AGREE, "nemo_skills.jsonl")),
              "verl": load(os.path.join(AGREE, "verl.jsonl"))}
    rows, tot = [], [0, 0, 0]
    detail = {}
    for name, cases in suites.items():
        ours = run_ours(a.ours, cases)
        mv = run_math_verify(cases)
        o = sum(x == c["expected"] for x, c in zip(ours, cases))
        m = sum(x == c["expected"] for x, c in zip(mv, cases))
        rows.append((name, len(cases), o, m))
        tot[0] += len(cases); tot[1] += o; tot[2] += m
        detail[name] = [{"id": c["id"], "expected": c["expected"], "ours": x, "math_verify": y}
                        for c, x, y in zip(cases, ours, mv) if x != c["expected"] or y != c["expected"]]
    print(f"{'suite':<12} {'cases':>5}  {'ours':>12}  {'Math-Verify':>12}")
    for name, n, o, m in rows + [("all", *tot)]:
        print(f"{name:<12} {n:>5}  {o:>5} {100*o/n:5.1f}%  {m:>5} {100*m/n:5.1f}%")
    if os.environ.get("AGREEMENT_DETAIL"):
        print(json.dumps(detail, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(main())
