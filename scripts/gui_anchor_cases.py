#!/usr/bin/env python3
"""Writes grpo-rewards/tests/data/gui/<profile>.jsonl: GUI cases whose
expected rewards come from running each anchor's own reward function /
evaluator, read at a pinned commit from a local git mirror.

Usage: python3 scripts/gui_anchor_cases.py MIRRORS_DIR [OUT_DIR]

MIRRORS_DIR holds bare clones named `<owner>+<repo>/repo` (the layout of
this project's fetch tool). Only the InfiGUI-R1 evaluator needs numpy.
The anchors' code is executed from the mirror, never copied here; the case
inputs below are ours, built from the examples in the anchors' code,
README and data files (recorded in each case's `source`).
"""

import ast
import json
import os
import subprocess
import sys
import tempfile
import types

ANCHORS = {
    "gui_r1": ("ritzz-ai/GUI-R1", "d43eea2f1c52356077034ff2524642fc05e06c6a",
               "verl/utils/reward_score/r1gui.py"),
    "ui_r1": ("lll6gg/UI-R1", "2fe9bf00c8aae85fcedaf56eb3e2780dbfe8075e",
              "src/ui_r1/src/open_r1/grpo_json_action_coord.py"),
    "gui_g1": ("Yuqi-Zhou/GUI-G1", "e581fe98fe902d7903207686351d6d30c2ca4acd",
               "src/open-r1-multimodal/src/open_r1/grpo_rec.py"),
    "infigui_r1_androidcontrol": ("Reallm-Labs/InfiGUI-R1",
                                  "d280ab8786cb3b063ae5cc62dc5fa91c4ceb348e",
                                  "eval/android_control/evaluate_android_control.py"),
}


def source(mirrors, repo, commit, path):
    git_dir = os.path.join(mirrors, repo.replace("/", "+"), "repo")
    return subprocess.run(["git", "--git-dir", git_dir, "show", f"{commit}:{path}"],
                          check=True, capture_output=True, text=True).stdout


def load_functions(src, names, prelude="import re, os, json, ast\nfrom datetime import datetime\n"):
    """Executes only the named top-level functions of a module (its other
    imports pull in training frameworks)."""
    tree = ast.parse(src)
    keep = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    missing = set(names) - {n.name for n in keep}
    assert not missing, missing
    ns = {}
    exec(prelude, ns)
    exec(compile(ast.Module(body=keep, type_ignores=[]), "<anchor>", "exec"), ns)
    return ns


def where(profile, what):
    repo, commit, path = ANCHORS[profile]
    return f"{repo}@{commit} {path} ({what})"


def think(answer, lead="<think>reasoning</think> "):
    return f"{lead}<answer>{answer}</answer>"


# ------------------------------------------------------------------ GUI-R1
def gui_r1_cases():
    ds = "ritzz-ai/GUI-R1@d43eea2f1c52356077034ff2524642fc05e06c6a verl/utils/dataset.py"
    rule = "reward rule"
    c = []

    def add(note, gold, pred, options=None, anchor_gold=None, src=rule):
        c.append({"note": note, "source": src if src.startswith("ritzz") else where("gui_r1", src),
                  "gold": gold, "pred": pred, "options": options or {},
                  "_anchor_gold": anchor_gold if anchor_gold is not None else gold})

    example = ("<think> The command 'What's on the menu at IHOP?' suggests a search for information about "
               "the menu at an IHOP restaurant.</think>  <answer>[{'action': 'scroll', 'point': [123, 401], "
               "'input_text': 'left'}]</answer>")
    add("the commented example at the end of r1gui.py (gold text LEFT, JSON-string gold)",
        json.dumps({"action": "scroll", "gt_bbox": [103.0, 409.18800000000005], "input_text": "LEFT"}),
        example, src="commented example at the end of the file")
    click = "[{'action': 'click', 'point': [123, 300], 'input_text': 'no input text'}]"
    add("prompt example click, gold point 12 px away", {"action": "click", "gt_bbox": [130, 310], "input_text": "no input text"},
        think(click), src=f"{ds} prompt example")
    add("click 140 px from the gold point (strict <)", {"action": "click", "gt_bbox": [263, 300], "input_text": "no input text"},
        think(click))
    add("click 139 px from the gold point", {"action": "click", "gt_bbox": [262, 300], "input_text": "no input text"},
        think(click))
    add("click on the box edge (strictly inside required)", {"action": "click", "gt_bbox": [123, 200, 400, 400], "input_text": "no input text"},
        think(click))
    add("click inside the box", {"action": "click", "gt_bbox": [100, 200, 400, 400], "input_text": "no input text"},
        think(click))
    add("prompt example type text vs a shorter gold (F1 0.8)",
        {"action": "type", "gt_bbox": [-100, -100], "input_text": "shanghai mall"},
        think("[{'action': 'type', 'point': [-100, -100], 'input_text': 'shanghai shopping mall'}]"),
        src=f"{ds} prompt example")
    add("type with the default text fails the format",
        {"action": "type", "gt_bbox": [-100, -100], "input_text": "shanghai mall"},
        think("[{'action': 'type', 'point': [-100, -100], 'input_text': 'no input text'}]"))
    add("prompt example press_back with point [-100, -100]",
        {"action": "press_back", "gt_bbox": [-100, -100], "input_text": "no input text"},
        think("[{'action': 'press_back', 'point': [-100, -100], 'input_text': 'no input text'}]"),
        src=f"{ds} prompt example")
    add("a point with decimals is not two integers: format 0, point read as [0, 0]",
        {"action": "click", "gt_bbox": [130, 310], "input_text": "no input text"},
        think("[{'action': 'click', 'point': [123.5, 300], 'input_text': 'no input text'}]"))
    add("no point at all: format 0, the anchor reads [0, 0] (near this gold)",
        {"action": "click", "gt_bbox": [50, 60], "input_text": "no input text"},
        think("[{'action': 'click', 'input_text': 'no input text'}]"))
    add("double-quoted answer: format 1 (a valid literal) but no 'action' match",
        {"action": "click", "gt_bbox": [130, 310], "input_text": "no input text"},
        think('[{"action": "click", "point": [123, 300], "input_text": "no input text"}]'))
    add("leading space before <think>: format 0",
        {"action": "click", "gt_bbox": [130, 310], "input_text": "no input text"},
        " " + think(click))
    add("scroll text UP: not in the format's list, F1 lowercased matches",
        {"action": "scroll", "gt_bbox": [-100, -100], "input_text": "up"},
        think("[{'action': 'scroll', 'point': [-100, -100], 'input_text': 'UP'}]"))
    add("capitalised action: accuracy lowercases it",
        {"action": "click", "gt_bbox": [130, 310], "input_text": "no input text"},
        think("[{'action': 'Click', 'point': [123, 300], 'input_text': 'no input text'}]"))
    add("two actions on one line: the last [int, int] of the line is the point",
        {"action": "click", "gt_bbox": [500, 500], "input_text": "no input text"},
        think("[{'action': 'click', 'point': [10, 10], 'input_text': 'no input text'}, "
              "{'action': 'click', 'point': [500, 500], 'input_text': 'no input text'}]"))
    add("wrong action type", {"action": "click", "gt_bbox": [130, 310], "input_text": "no input text"},
        think("[{'action': 'scroll', 'point': [123, 300], 'input_text': 'down'}]"))
    add("bracketed gold text: brackets removed before F1",
        {"action": "select", "gt_bbox": [-100, -100], "input_text": "[Large]"},
        think("[{'action': 'select', 'point': [-100, -100], 'input_text': 'large'}]"))
    row = {"gt_action": "click", "gt_bbox": [0.1, 0.2, 0.3, 0.4], "gt_input_text": "no input text"}
    add("data-set row, [0,1] box scaled by image_size as the loader does",
        row, think("[{'action': 'click', 'point': [200, 600], 'input_text': 'no input text'}]"),
        options={"gold_frame": "normalized", "image_size": [1000, 2000]},
        anchor_gold=json.dumps({"action": "click", "gt_bbox": [100.0, 400.0, 300.0, 800.0], "input_text": "no input text"}),
        src=f"{ds} __getitem__ (gt_bbox scaled by the image size)")
    return c


def run_gui_r1(ns, case):
    g = case["_anchor_gold"]
    g = g if isinstance(g, str) else json.dumps(g)
    r = ns["r1gui_compute_score"](case["pred"], g)
    return {"reward": r["overall"], "format": r["format"], "accuracy": r["accuracy"]}


# ------------------------------------------------------------------ UI-R1
def ui_r1_gold(action, bbox=None):
    # the training script's solution string
    if bbox is not None:
        return f"<answer>[{{'action': 'click' ,'coordinate': {bbox} }}]</answer>"
    return f"<answer>[{{'action': '{action}' ,'coordinate': [0,0,0,0]}}]</answer>"


def ui_r1_cases():
    readme = "lll6gg/UI-R1@2fe9bf00c8aae85fcedaf56eb3e2780dbfe8075e README.md (test.json example)"
    c = []

    def add(note, gold, pred, scale=(1.0, 1.0), src="reward functions"):
        c.append({"note": note, "source": src if src.startswith("lll6gg") else where("ui_r1", src),
                  "gold": gold, "pred": pred, "options": {"scale": list(scale)}})

    search = ui_r1_gold("click", [825, 72, 1673, 149])
    weather = ui_r1_gold("click", [123, 732, 334, 812])
    pt = lambda x, y: think(f"[{{'action': 'click', 'coordinate': [{x}, {y}]}}]", lead="<think> ... </think> ")
    add("click inside the README's search bar box", search, pt(1000, 100), src=readme)
    add("click on the box's corner (inclusive)", search, pt(825, 72), src=readme)
    add("one pixel left of the box", search, pt(824, 100), src=readme)
    add("scale [2, 2] applied before the box test", weather, pt(100, 380), scale=(2.0, 2.0), src=readme)
    add("scale [1.5, 1.5]: 549 * 1.5 = 823.5 -> 823, outside", search, pt(549, 60), scale=(1.5, 1.5))
    add("scale [1.5, 1.5]: 551 * 1.5 = 826.5 -> 826, inside", search, pt(551, 60), scale=(1.5, 1.5))
    add("a point with decimals reads as [0, 0]", search, pt("1000.5", 100))
    add("scroll against the dummy-box gold: type match gives the coordinate reward",
        ui_r1_gold("scroll"), think("[{'action': 'scroll', 'coordinate': [0, 0]}]"), src="training script's non-click solution")
    add("unquoted action name is read too", ui_r1_gold("open_app"), think("[{'action': open_app, 'coordinate': [0, 0]}]"))
    add("action names compare as written (Click != click)", search, think("[{'action': 'Click', 'coordinate': [1000, 100]}]"))
    add("no think block: format 0", search, "<answer>[{'action': 'click', 'coordinate': [1000, 100]}]</answer>")
    add("no answer block: nothing read", search, "click at [1000, 100]")
    add("double-quoted JSON answer: no action read", search, think('[{"action": "click", "coordinate": [1000, 100]}]'))
    add("wrong action", ui_r1_gold("navigate_back"), think("[{'action': 'click', 'coordinate': [1000, 100]}]"))
    return c


def run_ui_r1(ns, case):
    comp = [[{"content": case["pred"]}]]
    sol = [case["gold"]]
    scales = [case["options"]["scale"]]
    a = ns["accuracy_reward_action"](comp, sol, scales)[0]
    co = ns["accuracy_reward_coord"](comp, sol, scales)[0]
    f = ns["format_reward"](comp)[0]
    return {"reward": a + co + f, "action": a, "coordinate": co, "format": f}


# ------------------------------------------------------------------ GUI-G1
def gui_g1_cases():
    data = "Yuqi-Zhou/GUI-G1@e581fe98fe902d7903207686351d6d30c2ca4acd data/GUI-R1-3K.json (first solution)"
    sol = [1207.68, 1024.9199999999998, 1351.6799999999998, 1080.0]
    c = []

    def add(note, pred, gold=sol, src=data):
        c.append({"note": note, "source": src, "gold": gold, "pred": pred,
                  "options": {"image_size": [1920, 1080]}})

    add("fenced JSON box close to the gold", "```json\n[{\"bbox_2d\": [1207, 1025, 1351, 1080]}]\n```")
    add("the gold box itself", json.dumps([{"bbox_2d": sol}]))
    add("a large box: hit kept, IoU and box terms drop", "[{'bbox_2d': [1000, 980, 1600, 1080]}]")
    add("centre outside", "[{'bbox_2d': [0, 0, 100, 100], 'label': 'button'}]")
    add("text before the fence line", "The element is here:\n```json\n[{\"bbox_2d\": [1200, 1020, 1360, 1080]}]\n```")
    add("a dict, not a list: nothing read", "{\"bbox_2d\": [1200, 1020, 1360, 1080]}")
    add("reasoning text around the literal: nothing read", "<think>x</think> [{'bbox_2d': [1200, 1020, 1360, 1080]}]")
    add("fence line with trailing spaces is not a fence", "```json  \n[{\"bbox_2d\": [1200, 1020, 1360, 1080]}]\n```")
    add("a box far off the image: the box term goes negative (no clamp)", "[{'bbox_2d': [4000, 1024, 4100, 1080]}]")
    add("a zero-area box at the gold's centre: hit, IoU 0", "[{'bbox_2d': [1300, 1050, 1300, 1050]}]")
    add("integer gold box (README-style)", "[{'bbox_2d': [120, 730, 330, 810]}]", gold=[123, 732, 334, 812],
        src="lll6gg/UI-R1@2fe9bf00c8aae85fcedaf56eb3e2780dbfe8075e README.md (box)")
    return c


def run_gui_g1(ns, case):
    comp = [[{"content": case["pred"]}]]
    w, h = case["options"]["image_size"]
    img = types.SimpleNamespace(width=w, height=h)
    sol = [case["gold"]]
    hit = ns["hit_reward"](comp, sol)[0]
    iou = ns["iou_reward"](comp, sol)[0]
    bx = ns["box_reward"](comp, sol, image=[img])[0]
    return {"reward": hit + iou + bx, "hit": hit, "iou": iou, "box": bx}


# ------------------------------------------------------------------ InfiGUI-R1
def infigui_cases():
    prompt = ("Reallm-Labs/InfiGUI-R1@d280ab8786cb3b063ae5cc62dc5fa91c4ceb348e "
              "eval/android_control/android_control.py (mobile_use tool schema, tool_call output)")
    c = []
    size = {"width": 1080, "height": 2400, "resized_width": 1092, "resized_height": 2408}

    def call(args, think_=True, tags=True):
        body = json.dumps({"name": "mobile_use", "arguments": args})
        out = f"<tool_call>\n{body}\n</tool_call>" if tags else body
        return ("<think>the sub-goal <step>s</step></think>" if think_ else "") + out

    def add(note, gold, pred, extra=None, src=prompt):
        o = {"image_size": [size["width"], size["height"]],
             "resized_width": size["resized_width"], "resized_height": size["resized_height"],
             "pred_frame": "resized"}
        o.update(extra or {})
        c.append({"note": note, "source": src, "gold": gold, "pred": pred, "options": o})

    click_gold = {"action": "click", "coordinate": [540, 1200], "candidate_bbox": [[400, 1100, 680, 1300]]}
    add("click at the gold point", click_gold, call({"action": "click", "coordinate": [546, 1204]}))
    add("click inside the 1.2x-enlarged box, outside the box itself", click_gold,
        call({"action": "click", "coordinate": [697, 1290]}))
    add("click just outside the enlarged box and far from the point", click_gold,
        call({"action": "click", "coordinate": [720, 1350]}))
    add("click within 0.04 * max side of the point, outside every box",
        {"action": "click", "coordinate": [540, 1200], "candidate_bbox": []},
        call({"action": "click", "coordinate": [546, 1290]}))
    add("same click with a larger enlargement factor (anchor constant BBOX_ENLARGE_FACTOR = 1.5)", click_gold,
        call({"action": "click", "coordinate": [720, 1350]}), extra={"BBOX_ENLARGE_FACTOR": 1.5})
    add("point threshold (POINT_DISTANCE_THRESHOLD = 0.01)",
        {"action": "click", "coordinate": [540, 1200], "candidate_bbox": []},
        call({"action": "click", "coordinate": [546, 1290]}), extra={"point_distance_threshold": 0.01})
    add("long_press is its own type", click_gold, call({"action": "click", "coordinate": [546, 1204]}) .replace("click", "long_press"))
    add("long_press gold, click prediction", dict(click_gold, action="long_press"),
        call({"action": "click", "coordinate": [546, 1204]}))
    swipe_gold = {"action": "swipe", "direction": "up"}
    add("swipe up: dominant axis of coordinate -> coordinate2", swipe_gold,
        call({"action": "swipe", "coordinate": [546, 1800], "coordinate2": [600, 600]}))
    add("swipe with a larger x than y move reads as right", swipe_gold,
        call({"action": "swipe", "coordinate": [100, 1800], "coordinate2": [900, 1300]}))
    add("type: containment either way, case-insensitive", {"action": "type", "text": "Coffee shops near me"},
        call({"action": "type", "text": "coffee shops"}))
    add("type: different text", {"action": "type", "text": "Coffee shops near me"},
        call({"action": "type", "text": "tea"}))
    open_gold = {"action": "open", "text": "Gmail", "candidate_bbox": [[100, 300, 300, 500]]}
    add("open by name", open_gold, call({"action": "open", "text": "gmail"}))
    add("open satisfied by clicking the app's candidate box", open_gold,
        call({"action": "click", "coordinate": [202, 402]}))
    add("open: a click elsewhere", open_gold, call({"action": "click", "coordinate": [900, 2000]}))
    add("open without candidate boxes: a click is no match", {"action": "open", "text": "Gmail"},
        call({"action": "click", "coordinate": [202, 402]}))
    add("system button, case-insensitive", {"action": "system_button", "button": "Back"},
        call({"action": "system_button", "button": "back"}))
    add("system button, another button", {"action": "system_button", "button": "Back"},
        call({"action": "system_button", "button": "Home"}))
    add("wait: type match is enough", {"action": "wait", "time": 2}, call({"action": "wait", "time": 5}))
    add("no <tool_call> tags: the bare mobile_use call is read", {"action": "wait", "time": 2},
        call({"action": "wait", "time": 1}, tags=False) + "<conclusion>done</conclusion>")
    add("broken JSON in the call: an evaluator error, no match", click_gold,
        "<tool_call>\n{\"name\": \"mobile_use\", \"arguments\": {\"action\": \"click\", \"coordinate\": [546, 1204]}\n</tool_call>")
    return c


def run_infigui(mod, ac_cls, case):
    o = case["options"]
    saved = (mod.BBOX_ENLARGE_FACTOR, mod.POINT_DISTANCE_THRESHOLD)
    mod.BBOX_ENLARGE_FACTOR = o.get("BBOX_ENLARGE_FACTOR", saved[0])
    mod.POINT_DISTANCE_THRESHOLD = o.get("point_distance_threshold", saved[1])
    try:
        obj = object.__new__(ac_cls)
        obj.thinking, obj.debug, obj.eval_type = True, False, "low"
        obj.model_path, obj.output_dir = "m", tempfile.mkdtemp()
        job = {"llm_output": case["pred"], "check_pams": case["gold"],
               "width": o["image_size"][0], "height": o["image_size"][1],
               "resized_width": o["resized_width"], "resized_height": o["resized_height"]}
        try:
            obj.compute_scores([job])
        except ZeroDivisionError:  # its click accuracy over a batch without clicks
            pass
    finally:
        mod.BBOX_ENLARGE_FACTOR, mod.POINT_DISTANCE_THRESHOLD = saved
    tm, em = bool(job.get("type_match")), bool(job.get("extact_match"))
    return {"reward": 1.0 if em else 0.0, "type_match": 1.0 if tm else 0.0, "exact_match": 1.0 if em else 0.0}


def main():
    mirrors = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(__file__), "..", "grpo-rewards", "tests", "data", "gui")
    os.makedirs(out, exist_ok=True)
    results = {}
    ns = {}
    exec(source(mirrors, *ANCHORS["gui_r1"]), ns)
    results["gui_r1"] = [(c, run_gui_r1(ns, c)) for c in gui_r1_cases()]
    ns = load_functions(source(mirrors, *ANCHORS["ui_r1"]),
                        ["extract_action", "extract_coord", "extract_bbox", "accuracy_reward_action",
                         "accuracy_reward_coord", "format_reward"])
    results["ui_r1"] = [(c, run_ui_r1(ns, c)) for c in ui_r1_cases()]
    ns = load_functions(source(mirrors, *ANCHORS["gui_g1"]),
                        ["parse_json", "iou_reward", "hit_reward", "box_reward"])
    results["gui_g1"] = [(c, run_gui_g1(ns, c)) for c in gui_g1_cases()]
    # InfiGUI-R1: the evaluator module and the score loop of android_control.py
    repo, commit, path = ANCHORS["infigui_r1_androidcontrol"]
    ev = types.ModuleType("evaluate_android_control")
    exec(source(mirrors, repo, commit, path), ev.__dict__)
    sys.modules["evaluate_android_control"] = ev
    for stub in ["qwen2vl", "qwen_vl_utils", "PIL", "PIL.Image", "tqdm"]:
        m = types.ModuleType(stub)
        m.Qwen2VL = m.smart_resize = m.Image = None
        m.tqdm = lambda it, **_: it
        sys.modules[stub] = m
    ac = types.ModuleType("android_control")
    exec(source(mirrors, repo, commit, "eval/android_control/android_control.py"), ac.__dict__)
    results["infigui_r1_androidcontrol"] = [(c, run_infigui(ev, ac.AndroidControl, c)) for c in infigui_cases()]
    for profile, rows in results.items():
        with open(os.path.join(out, f"{profile}.jsonl"), "w") as f:
            for c, exp in rows:
                rec = {k: v for k, v in c.items() if not k.startswith("_")}
                rec["expected"] = exp
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        print(profile, len(rows), "cases")


if __name__ == "__main__":
    main()
