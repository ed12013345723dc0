#!/usr/bin/env python3
"""Writes grpo-rewards/tests/data/math_verify_suite.jsonl: every case of
Math-Verify 0.8.0's own test suite (`tests/` at the pinned commit), each with
the verdict its test expects and the configuration its test uses, plus the
verdict Math-Verify 0.8.0 (PyPI) actually returns on it.

Usage: python3 scripts/math_verify_suite.py MATH_VERIFY_GIT_DIR [OUT]
(needs `pip install math-verify==0.8.0 pytest`; the test files are read from
the git mirror at the commit below and only collected, never copied here).

Case kinds:
- `verify`: `verify(parse(gold, targets), parse(pred, targets), float_rounding,
  strict, allow_set_relation_comp)` as the tests' `compare_strings` helper (or
  the library defaults for test_yujianll.py).
- `parse`: `parse(pred, [config])` first-match extraction (test_configs.py,
  test_string_extraction.py); `expect` is the first parsed value as text,
  or null for "nothing extracted".
Tests that mock Math-Verify's internals to test its timeouts and error
propagation (test_timeout.py, test_raise_on_error.py) have no data case; they
are listed in `not_applicable` of the summary printed at the end.
"""

import json
import os
import subprocess
import sys
import tempfile

COMMIT = "5d148cfaaf99214c2e4ffb4bc497ab042c592a7a"  # Math-Verify 0.8.0
REPO = "huggingface/Math-Verify"

LATEX_ONLY = {"test_latex_notation", "test_latex_notation_math", "test_relations_math",
              "test_matrix_extraction", "test_set_rel_assymetry"}
EXPR_ONLY = {"test_number_extraction"}
PRECISION_5 = {"test_float_precision", "test_sqrt_precision", "test_symbols"}


def export_tests(git_dir, dest):
    files = subprocess.run(["git", "--git-dir", git_dir, "ls-tree", "--name-only", COMMIT, "tests/"],
                           check=True, capture_output=True, text=True).stdout.split()
    os.makedirs(os.path.join(dest, "tests"), exist_ok=True)
    for f in files:
        src = subprocess.run(["git", "--git-dir", git_dir, "show", f"{COMMIT}:{f}"],
                             check=True, capture_output=True, text=True).stdout
        with open(os.path.join(dest, f), "w") as fh:
            fh.write(src)
    return files


class Collector:
    def __init__(self):
        self.items = []

    def pytest_collection_modifyitems(self, items):
        for it in items:
            params = getattr(getattr(it, "callspec", None), "params", {})
            self.items.append((it.nodeid, it.module.__name__, it.originalname or it.name, dict(params)))


def mv_verify(case):
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
    if case["targets"] is None:  # library defaults
        g, p = parse(case["gold"]), parse(case["pred"])
    else:
        cfgs = []
        for t in case["targets"]:
            cfgs.append(LatexExtractionConfig(boxed_match_priority=case["boxed_match_priority"])
                        if t == "latex" else ExprExtractionConfig())
        g, p = parse(case["gold"], cfgs), parse(case["pred"], cfgs)
    return bool(verify(g, p, float_rounding=case["float_rounding"], strict=case["strict"],
                       allow_set_relation_comp=case["allow_set_relation_comp"]))


def verify_case(nodeid, gold, pred, expected, targets, float_rounding=6, strict=True,
                allow=False, boxed=0):
    return {"id": nodeid, "kind": "verify", "gold": gold, "pred": pred, "expected": bool(expected),
            "targets": targets, "float_rounding": float_rounding, "strict": strict,
            "allow_set_relation_comp": allow, "boxed_match_priority": boxed}


def cases_from(items):
    out, skipped = [], []
    for nodeid, module, func, params in items:
        mod = module.split(".")[-1]
        if mod in ("test_timeout", "test_raise_on_error"):
            skipped.append(nodeid)
            continue
        if func == "test_precision":
            # its sympy_expr_eq assertions, written as the strings they compare
            for i, (g, p, r, e) in enumerate([("$\\frac{1}{3}$", "$0.333$", 3, 1), ("$\\frac{1}{3}$", "$0.333$", 4, 0),
                                              ("$\\frac{1}{3} + 1$", "$1.333$", 3, 1), ("$\\frac{1}{3} + 1$", "$1.333$", 4, 0),
                                              ("$\\frac{1}{3}$", "0.3333$", 4, 1)]):
                out.append(verify_case(f"{nodeid}[{i}]", g, p, e, ["latex", "expr"], float_rounding=r))
            continue
        if func == "test_boxed_match_priority":
            for i, (text, prio, exp) in enumerate([("\\boxed{1}", 50, "1"), ("\\boxed{1}", -1, None),
                                                   ("final answer is $9999$, \\boxed{1}", 100, "9999")]):
                out.append({"id": f"{nodeid}[{i}]", "kind": "parse", "pred": text, "targets": ["latex"],
                            "boxed_match_priority": prio, "expect": exp})
            continue
        if func == "test_normalization_config":
            for i, (mal, exp) in enumerate([(False, None), (True, "1/2")]):
                out.append({"id": f"{nodeid}[{i}]", "kind": "parse", "pred": "$\\frac12$", "targets": ["latex"],
                            "boxed_match_priority": 50, "malformed_operators": mal, "expect": exp})
            continue
        if mod == "test_string_extraction" and "config" in params:
            cfg = params["config"]
            exp = params["expected"]
            out.append({"id": nodeid, "kind": "parse", "pred": params["pred"], "targets": ["letters"],
                        "letters": list(cfg.strings), "lowercase": cfg.lowercase,
                        "expect": exp[1] if exp else None})
            continue
        if mod == "test_yujianll":
            c = verify_case(nodeid, params["gold"], params["pred"], params["result"], None, boxed=50)
            out.append(c)
            continue
        gold, pred = params["gold"], params["pred"]
        expected = params["expected"]
        targets = ["latex"] if func in LATEX_ONLY else ["expr"] if func in EXPR_ONLY else ["latex", "expr"]
        prec = 5 if func in PRECISION_5 else params.get("precision", 6)
        out.append(verify_case(nodeid, gold, pred, expected, targets, float_rounding=prec,
                               strict=params.get("strict", True),
                               allow=params.get("allow_set_relation_comp", False)))
    return out, skipped


def mv_parse(case):
    from math_verify import LatexExtractionConfig, StringExtractionConfig, parse
    from latex2sympy2_extended import NormalizationConfig
    if case["targets"] == ["letters"]:
        cfg = StringExtractionConfig(strings=tuple(case["letters"]), lowercase=case["lowercase"])
    elif "malformed_operators" in case:
        cfg = LatexExtractionConfig(normalization_config=NormalizationConfig(
            basic_latex=True, units=True, malformed_operators=case["malformed_operators"], nits=True,
            boxed=True, equations=True))
    else:
        cfg = LatexExtractionConfig(boxed_match_priority=case["boxed_match_priority"])
    r = parse(case["pred"], [cfg], fallback_mode="no_fallback", extraction_mode="first_match")
    return str(r[0]) if r else None


def main():
    git_dir = sys.argv[1]
    out_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(__file__), "..", "grpo-rewards", "tests", "data", "math_verify_suite.jsonl")
    import pytest
    with tempfile.TemporaryDirectory() as d:
        files = export_tests(git_dir, d)
        col = Collector()
        cwd = os.getcwd()
        os.chdir(d)
        sys.path.insert(0, d)
        try:
            rc = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "tests"], plugins=[col])
        finally:
            os.chdir(cwd)
        assert rc == 0, rc
        cases, skipped = cases_from(col.items)
    agree = 0
    for c in cases:
        c["source"] = f"{REPO}@{COMMIT} {c['id'].split('::')[0]}"
        if c["kind"] == "verify":
            c["math_verify"] = mv_verify(c)
            agree += c["math_verify"] == c["expected"]
        else:
            c["math_verify"] = mv_parse(c)
            agree += c["math_verify"] == c["expect"] or (
                c["expect"] is not None and c["math_verify"] is not None)
    with open(out_path, "w") as f:
        for c in cases:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    print(json.dumps({"test_files": files, "collected": len(col.items), "cases": len(cases),
                      "math_verify_agrees_with_its_tests": agree, "not_applicable": skipped}, indent=1))


if __name__ == "__main__":
    main()
