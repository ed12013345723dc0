//! Code verifier: test shapes, scoring and the `verify code` JSON contract.

use grpo_rewards::code::verify_json;
use serde_json::{Value, json};

fn run(v: Value) -> Value {
    verify_json(&v).unwrap()
}

fn statuses(out: &Value) -> Vec<String> {
    out["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn stdio_pairs_pass_and_fail() {
    let out = run(json!({
        "language": "python",
        "program": "a, b = map(int, input().split())\nprint(a + b)\n",
        "tests": {"inputs": ["1 2\n", "3 4\n", "5 5\n"], "outputs": ["3\n", "7\n", "11\n"]},
        "options": {"timeout_s": 2}
    }));
    eprintln!("{out:#}");
    assert_eq!(statuses(&out), ["pass", "pass", "wrong_answer"]);
    assert_eq!(out["passed"], 2);
    assert_eq!(out["total"], 3);
    assert!((out["reward"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-12);
    let iso: Vec<&str> = out["isolation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(iso.contains(&"pid_ns"), "{iso:?}");
}

#[test]
fn stdio_list_shape_and_json_string_tests() {
    let tests = json!([{"stdin": "3\n", "stdout": "9"}, {"input": "4\n", "output": "16\n"}]);
    let out = run(json!({"program": "n = int(input())\nprint(n * n)", "tests": tests.to_string()}));
    assert_eq!(statuses(&out), ["pass", "pass"]);
}

#[test]
fn call_based_lcb_and_apps_styles() {
    // LiveCodeBench: inputs are newline-separated JSON arguments, outputs JSON strings;
    // `List` comes from the import header.
    let program = "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        seen = {}\n        for i, x in enumerate(nums):\n            if target - x in seen:\n                return (seen[target - x], i)\n            seen[x] = i\n";
    let out = run(json!({
        "program": program,
        "tests": {"fn_name": "twoSum", "inputs": ["[2,7,11,15]\n9", "[3,2,4]\n6", "[3,3]\n6"], "outputs": ["[0, 1]", "[1, 2]", "[1, 0]"]},
        "options": {"timeout_s": 3}
    }));
    assert_eq!(statuses(&out), ["pass", "pass", "wrong_answer"], "{out:#}");
    // APPS/TACO: inputs are argument lists, outputs possibly wrapped in a one-element list.
    let out = run(json!({
        "program": "def add(a, b):\n    return a + b\n",
        "tests": {"fn_name": "add", "inputs": [[1, 2], [2.5, 0.5], ["a", "b"]], "outputs": [[3], 3, ["ab"]]},
    }));
    assert_eq!(statuses(&out), ["pass", "pass", "pass"], "{out:#}");
}

#[test]
fn call_based_type_rules() {
    let out = run(json!({
        "program": "def f(x):\n    return x\n",
        "tests": {"fn_name": "f", "inputs": ["true", "1", "3"], "outputs": ["1", "1.0", "3.0"]},
    }));
    // lcb (default): Python equality as LiveCodeBench, so True == 1 and 1 == 1.0
    assert_eq!(statuses(&out), ["pass", "pass", "pass"], "{out:#}");
    // lcb_strict: strict JSON, a bool is not a number (1 == 1.0 still holds)
    let strict = run(json!({
        "program": "def f(x):\n    return x\n",
        "tests": {"fn_name": "f", "inputs": ["true", "1", "3", "[true, 0]"], "outputs": ["1", "1.0", "3.0", "[1, false]"]},
        "options": {"compare": "lcb_strict"},
    }));
    assert_eq!(
        statuses(&strict),
        ["wrong_answer", "pass", "pass", "wrong_answer"],
        "{strict:#}"
    );
    let lcb = run(json!({
        "program": "def f(x):\n    return x\n",
        "tests": {"fn_name": "f", "inputs": ["[true, 0]", "2"], "outputs": ["[1, false]", "true"]},
    }));
    assert_eq!(statuses(&lcb), ["pass", "wrong_answer"], "{lcb:#}");
}

#[test]
fn null_stdin_is_empty_input() {
    // verl's sandbox tests pass `None` as stdin
    let prog = "import sys\ndata = sys.stdin.read()\nprint(len(data))\n";
    let out =
        run(json!({"program": prog, "tests": {"inputs": [null, "ab"], "outputs": ["0", "2"]}}));
    assert_eq!(statuses(&out), ["pass", "pass"], "{out:#}");
    let out = run(json!({"program": prog, "tests": [{"stdin": null, "stdout": "0"}]}));
    assert_eq!(statuses(&out), ["pass"], "{out:#}");
    // a null expected output is still bad task data
    assert!(
        verify_json(&json!({"program": prog, "tests": {"inputs": [""], "outputs": [null]}}))
            .is_err()
    );
}

#[test]
fn call_based_missing_function_and_exception() {
    let out = run(json!({
        "program": "def g(x):\n    raise ValueError('boom')\n",
        "tests": {"fn_name": "g", "inputs": ["1"], "outputs": ["1"]},
    }));
    assert_eq!(statuses(&out), ["runtime_error"]);
    assert!(
        out["tests"][0]["stderr"]
            .as_str()
            .unwrap()
            .contains("ValueError: boom")
    );
    let out = run(json!({
        "program": "def g(x):\n    return x\n",
        "tests": {"fn_name": "nope", "inputs": ["1"], "outputs": ["1"]},
    }));
    assert_eq!(statuses(&out), ["runtime_error"]);
}

#[test]
fn assert_cases_each_count() {
    let out = run(json!({
        "program": "def sq(x):\n    return x * x\n",
        "tests": {"fn_name": "sq", "assert_case": ["assert sq(2) == 4", "assert sq(3) == 10", "assert sq(-1) == 1"]},
        "options": {"score": "fraction"}
    }));
    assert_eq!(statuses(&out), ["pass", "wrong_answer", "pass"], "{out:#}");
    let out = run(json!({
        "program": "def sq(x):\n    return x * x\n",
        "tests": {"fn_name": "sq", "assert_case": ["assert sq(2) == 4", "assert sq(3) == 10"]},
        "options": {"score": "all_pass"}
    }));
    assert_eq!(out["reward"], 0.0);
}

#[test]
fn always_equal_object_scores_zero() {
    let hack = "class AlwaysEqual:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n        return False\n    def __bool__(self):\n        return True\n\ndef f(*a):\n    return AlwaysEqual()\n";
    let out = run(
        json!({"program": hack, "tests": {"fn_name": "f", "inputs": ["1"], "outputs": ["42"]}}),
    );
    assert_eq!(statuses(&out), ["wrong_answer"], "{out:#}");
    let out = run(
        json!({"program": hack, "tests": {"assert_case": ["assert f(1) == 42", "assert f(2)"]}}),
    );
    assert_eq!(statuses(&out), ["wrong_answer", "wrong_answer"], "{out:#}");
    let test =
        "def check(candidate):\n    assert candidate(1) == 42\n    assert candidate([1]) == [2]\n";
    let out = run(json!({"program": hack, "tests": {"test": test, "entry_point": "f"}}));
    assert_eq!(statuses(&out), ["wrong_answer"], "{out:#}");
    // A subclass of int with a lying __eq__ is not plain data either.
    let sub = "class I(int):\n    def __eq__(self, o):\n        return True\n\ndef f(x):\n    return I(0)\n";
    let out = run(
        json!({"program": sub, "tests": {"test": "def check(c):\n    assert c(1) == 42\n", "entry_point": "f"}}),
    );
    assert_eq!(statuses(&out), ["wrong_answer"], "{out:#}");
    assert_eq!(out["reward"], 0.0);
}

#[test]
fn early_exit_scores_zero() {
    for program in [
        "import sys\ndef f(x):\n    return 0\nsys.exit(0)\n",
        "import os\ndef f(x):\n    return 0\nos._exit(0)\n",
        "def f(x):\n    import os\n    os._exit(0)\n",
        "def f(x):\n    raise SystemExit(0)\n",
    ] {
        let a = run(json!({"program": program, "tests": {"assert_case": ["assert f(1) == 1"]}}));
        let h = run(
            json!({"program": program, "tests": {"test": "def check(c):\n    assert c(1) == 1\n", "entry_point": "f"}}),
        );
        let c = run(
            json!({"program": program, "tests": {"fn_name": "f", "inputs": ["1"], "outputs": ["1"]}}),
        );
        for out in [a, h, c] {
            assert_eq!(out["reward"], 0.0, "{program}: {out:#}");
            assert_ne!(statuses(&out), ["pass"]);
        }
    }
}

#[test]
fn compare_modes() {
    let prog = "print('0.50  1e3')";
    let lcb = run(json!({"program": prog, "tests": {"inputs": [""], "outputs": ["0.5 1000"]}}));
    assert_eq!(statuses(&lcb), ["pass"]);
    let exact = run(
        json!({"program": prog, "tests": {"inputs": [""], "outputs": ["0.5 1000"]}, "options": {"compare": "exact"}}),
    );
    assert_eq!(statuses(&exact), ["wrong_answer"]);
}

#[test]
fn argv_reaches_the_program_and_non_utf8_output_is_safe() {
    let out = run(json!({
        "program": "import sys\nprint(' '.join(sys.argv[1:]))\nsys.stdout.flush()\nsys.stdout.buffer.write(b'\\xff\\xfe')\n",
        "argv": ["a", "b c"],
        "tests": {"inputs": [""], "outputs": ["a b c\n\u{fffd}\u{fffd}"]},
    }));
    assert_eq!(statuses(&out), ["pass"], "{out:#}");
}

#[test]
fn invalid_inputs_are_errors_not_panics() {
    for bad in [
        json!([]),
        json!({"program": "print(1)"}),
        json!({"program": 5, "tests": {"inputs": [""], "outputs": [""]}}),
        json!({"language": "rust", "program": "", "tests": {"inputs": [""], "outputs": [""]}}),
        json!({"program": "", "tests": {"inputs": ["", ""], "outputs": [""]}}),
        json!({"program": "", "tests": {"inputs": [], "outputs": []}}),
        json!({"program": "", "tests": {"weird": 1}}),
        json!({"program": "", "tests": {"inputs": [""], "outputs": [""]}, "options": {"timeout_s": -1}}),
        json!({"program": "", "tests": {"inputs": [""], "outputs": [""]}, "options": {"bogus": 1}}),
        json!({"program": "", "tests": {"fn_name": "f", "inputs": ["not json"], "outputs": ["1"]}}),
        json!({"program": "", "argv": "x", "tests": {"inputs": [""], "outputs": [""]}}),
    ] {
        assert!(verify_json(&bad).is_err(), "{bad}");
    }
}
