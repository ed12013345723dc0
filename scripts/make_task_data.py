"""Writes the small synthetic data sets the example configs `toolcall.toml` and `gui.toml` train
on (the project's own data, generated from a fixed seed; no third-party content).

- data/toolcall/weather_{train,test}.jsonl: one function (`get_weather(city, unit)`), a question per row,
  BFCL-style `functions` and `possible_answer` columns, and the gold call as `answer`.
- data/code/tiny_functions_{train,test}.jsonl: HumanEval-format one-line integer functions (`add_3`, ...)
  with their tests, short enough for a character model trained from scratch.
- data/gui/clicks_{train,test}.jsonl: an instruction naming a button and its box on a 1000x1000 screen, the
  GUI-R1 gold action (`{"action": "click", "gt_bbox": [x1, y1, x2, y2], ...}`) as `gold`, and
  the gold response in GUI-R1's answer format as `answer`.

Usage: python scripts/make_task_data.py            # (re)write both files
       python scripts/make_task_data.py --check    # exit 1 if the files differ
"""
import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITIES = ["Paris", "Tokyo", "Lima", "Oslo", "Cairo", "Quito", "Perth", "Dakar", "Hanoi", "Riga"]
UNITS = ["celsius", "fahrenheit"]
BUTTONS = ["Save", "Open", "Close", "Send", "Print", "Search", "Undo", "Share", "Help", "Next"]

WEATHER_FN = {
    "name": "get_weather",
    "description": "Current weather of a city.",
    "parameters": {
        "type": "dict",
        "properties": {
            "city": {"type": "string", "description": "The city name."},
            "unit": {"type": "string", "description": "celsius or fahrenheit", "enum": UNITS},
        },
        "required": ["city"],
    },
}


def toolcall_rows(rng):
    rows = []
    pairs = [(c, u) for c in CITIES for u in UNITS]
    rng.shuffle(pairs)
    for i, (city, unit) in enumerate(pairs):
        rows.append({
            "id": f"weather-{i}",
            "question": f"What is the weather in {city} in {unit}?",
            "functions": [WEATHER_FN],
            "possible_answer": [{"get_weather": {"city": [city], "unit": [unit]}}],
            "answer": f'[get_weather(city="{city}", unit="{unit}")]',
        })
    return rows


def gui_rows(rng):
    rows = []
    for i in range(60):
        name = rng.choice(BUTTONS)
        x, y = rng.randrange(50, 900), rng.randrange(50, 900)
        box = [x, y, x + 60, y + 30]
        cx, cy = x + 30, y + 15
        rows.append({
            "id": f"click-{i}",
            "instruction": f"Click the {name} button at {box}.",
            "gold": {"action": "click", "gt_bbox": box, "input_text": "no input text"},
            "answer": f"<think>the {name} button</think> <answer>[{{'action': 'click', "
                      f"'point': [{cx}, {cy}], 'input_text': 'no input text'}}]</answer>",
        })
    return rows


def code_rows(rng):
    """HumanEval-format rows (`prompt`, `canonical_solution`, `test`, `entry_point`) for
    one-line integer functions: short enough for a character model trained from scratch."""
    ops = [("add", "+"), ("sub", "-"), ("mul", "*")]
    rows = []
    combos = [(name, op, k) for name, op in ops for k in range(2, 10)]
    rng.shuffle(combos)
    for i, (name, op, k) in enumerate(combos):
        fn = f"{name}_{k}"
        xs = [rng.randrange(-9, 10) for _ in range(3)]
        checks = "".join(f"    assert candidate({x}) == {eval(f'{x} {op} {k}')}\n" for x in xs)
        rows.append({
            "task_id": f"tiny/{i}",
            "prompt": f"def {fn}(x):\n    return",
            "canonical_solution": f" x {op} {k}\n",
            "test": f"def check(candidate):\n{checks}",
            "entry_point": fn,
        })
    return rows


def render(rows):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    files = {}
    for stem, rows in [
        ("data/toolcall/weather", toolcall_rows(random.Random(7))),
        ("data/gui/clicks", gui_rows(random.Random(11))),
        ("data/code/tiny_functions", code_rows(random.Random(13))),
    ]:
        # A quarter held out, with prompts disjoint from the training rows.
        cut = len(rows) * 3 // 4
        files[ROOT / f"{stem}_train.jsonl"] = render(rows[:cut])
        files[ROOT / f"{stem}_test.jsonl"] = render(rows[cut:])
    bad = False
    for path, text in files.items():
        if a.check:
            if not path.exists() or path.read_text() != text:
                print(f"{path} is out of date", file=sys.stderr)
                bad = True
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
