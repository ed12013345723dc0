//! GUI profiles: the anchors' constants at their edges (140 px strict, strict
//! vs inclusive boxes, F1 0.5 with the single-token rule, 1.2x boxes, 4 %
//! distance, 0.25/0.125 weights) and coordinate frames.

use grpo_rewards::gui::{Frame, GuiOptions, Profile, score, verify_json};
use serde_json::{Value, json};

fn r1(action: &str, point: [i64; 2], text: &str) -> Value {
    json!(format!(
        "<think>t</think> <answer>[{{'action': '{action}', 'point': [{}, {}], 'input_text': '{text}'}}]</answer>",
        point[0], point[1]
    ))
}

fn run(p: Profile, gold: Value, pred: Value, o: &GuiOptions) -> (f64, bool) {
    let s = score(p, &gold, &pred, o).unwrap();
    (s.reward, s.type_match)
}

#[test]
fn gui_r1_constants() {
    let o = GuiOptions::default();
    let g = |x: Value| x;
    let click_pt =
        g(json!({"action": "click", "gt_bbox": [100, 100], "input_text": "no input text"}));
    // distance < 140 strictly: 139 passes, 140 fails
    assert_eq!(
        run(
            Profile::GuiR1,
            click_pt.clone(),
            r1("click", [239, 100], "no input text"),
            &o
        ),
        (1.0, true)
    );
    let (r, _) = run(
        Profile::GuiR1,
        click_pt.clone(),
        r1("click", [240, 100], "no input text"),
        &o,
    );
    assert!((r - 0.2).abs() < 1e-12);
    // box: strictly inside
    let click_box =
        json!({"action": "click", "gt_bbox": [10, 10, 50, 50], "input_text": "no input text"});
    assert_eq!(
        run(
            Profile::GuiR1,
            click_box.clone(),
            r1("click", [30, 30], "no input text"),
            &o
        )
        .0,
        1.0
    );
    assert!(
        (run(
            Profile::GuiR1,
            click_box.clone(),
            r1("click", [10, 30], "no input text"),
            &o
        )
        .0 - 0.2)
            .abs()
            < 1e-12
    );
    // wrong type: format only
    let (r, tm) = run(
        Profile::GuiR1,
        click_box.clone(),
        r1("long_press", [30, 30], "no input text"),
        &o,
    );
    assert!((r - 0.2).abs() < 1e-12 && !tm);
    // type text: F1 >= 0.5
    let ty = json!({"action": "type", "gt_bbox": [0, 0], "input_text": "hello big world"});
    assert_eq!(
        run(
            Profile::GuiR1,
            ty.clone(),
            r1("type", [0, 0], "hello world"),
            &o
        )
        .0,
        1.0
    ); // F1 = 0.8
    assert!(
        (run(
            Profile::GuiR1,
            ty.clone(),
            r1("type", [0, 0], "goodbye moon"),
            &o
        )
        .0 - 0.2)
            .abs()
            < 1e-12
    );
    // single tokens: substring either way
    let ty1 = json!({"action": "type", "gt_bbox": [0, 0], "input_text": "Walmart"});
    assert_eq!(
        run(Profile::GuiR1, ty1, r1("type", [0, 0], "walmart.com"), &o).0,
        1.0
    );
    // format failures: no think block; type without text; scroll with bad direction
    let bare = json!(
        "<answer>[{'action': 'click', 'point': [30, 30], 'input_text': 'no input text'}]</answer>"
    );
    assert!((run(Profile::GuiR1, click_box.clone(), bare, &o).0 - 0.8).abs() < 1e-12);
    assert!(
        (run(
            Profile::GuiR1,
            ty.clone(),
            r1("type", [0, 0], "no input text"),
            &o
        )
        .0 - 0.0)
            .abs()
            < 1e-12
    );
    let sc = json!({"action": "scroll", "gt_bbox": [0, 0], "input_text": "down"});
    assert_eq!(
        run(Profile::GuiR1, sc.clone(), r1("scroll", [0, 0], "down"), &o).0,
        1.0
    );
    assert_eq!(
        run(Profile::GuiR1, sc, r1("scroll", [0, 0], "downwards"), &o).0,
        0.8
    );
    // other actions: type match only
    let back = json!({"action": "press_back", "gt_bbox": [0, 0], "input_text": "no input text"});
    assert_eq!(
        run(
            Profile::GuiR1,
            back,
            r1("press_back", [5, 5], "no input text"),
            &o
        )
        .0,
        1.0
    );
    // the answer is parsed as a literal, never evaluated
    let evil = json!("<think>x</think><answer>__import__('os').system('true')</answer>");
    assert_eq!(run(Profile::GuiR1, click_box, evil, &o).0, 0.0);
}

#[test]
fn ui_r1_constants() {
    let mut o = GuiOptions::default();
    let gold = json!({"action": "click", "bbox": [10, 10, 50, 50]});
    let pred = |x: f64, y: f64| {
        json!(format!(
            "<think>a</think><answer>[{{'action': 'click', 'coordinate': [{x}, {y}]}}]</answer>"
        ))
    };
    assert_eq!(
        run(Profile::UiR1, gold.clone(), pred(50.0, 50.0), &o).0,
        3.0
    ); // inclusive edge
    // UI-R1 reads `[int, int]` only: a point written with decimals is no
    // point and reads as [0, 0] (outside this box)
    assert_eq!(
        run(Profile::UiR1, gold.clone(), pred(50.9, 10.0), &o).0,
        2.0
    );
    assert_eq!(
        run(Profile::UiR1, gold.clone(), pred(51.0, 10.0), &o).0,
        2.0
    );
    o.scale_x = 2.0;
    o.scale_y = 2.0;
    assert_eq!(
        run(Profile::UiR1, gold.clone(), pred(20.0, 20.0), &o).0,
        3.0
    );
    // int() truncation after scaling: 25 * 2.03 = 50.75 -> 50, inside
    o.scale_x = 2.03;
    assert_eq!(
        run(Profile::UiR1, gold.clone(), pred(25.0, 20.0), &o).0,
        3.0
    );
    o.scale_x = 2.05; // 51.25 -> 51, outside
    assert_eq!(
        run(Profile::UiR1, gold.clone(), pred(25.0, 20.0), &o).0,
        2.0
    );
    let o = GuiOptions::default();
    let scroll = json!({"action": "scroll", "bbox": [0, 0, 1, 1]});
    let sp = json!("<think>a</think>\n<answer>[{'action': 'scroll', 'direction': 'up'}]</answer>");
    assert_eq!(run(Profile::UiR1, scroll.clone(), sp, &o).0, 3.0); // direction not checked
    let nofmt = json!("[{'action': 'scroll', 'direction': 'up'}]");
    // without <answer> UI-R1 reads no action at all
    assert_eq!(run(Profile::UiR1, scroll, nofmt, &o).0, 0.0);
    assert_eq!(
        run(
            Profile::UiR1,
            gold,
            json!("<think></think><answer>[{'action': 'type'}]</answer>"),
            &o
        )
        .0,
        1.0
    );
}

#[test]
fn gui_g1_constants() {
    let o = GuiOptions {
        width: Some(1000.0),
        height: Some(500.0),
        ..GuiOptions::default()
    };
    let gold = json!({"bbox": [100, 100, 199, 199]});
    // exact box: hit 1 + 0.25 IoU(1) + 0.125 box(1)
    let s = score(
        Profile::GuiG1,
        &gold,
        &json!("```json\n[{\"bbox_2d\": [100, 100, 199, 199]}]\n```"),
        &o,
    )
    .unwrap();
    assert!((s.reward - 1.375).abs() < 1e-12, "{s:?}");
    // a huge box keeps hit but loses IoU and box terms
    let s = score(
        Profile::GuiG1,
        &gold,
        &json!("[{\"bbox_2d\": [0, 0, 299, 299]}]"),
        &o,
    )
    .unwrap();
    assert_eq!(s.components["hit"], 1.0);
    // GUI-G1's IoU: intersection on [x1, x2 - 1] (+1), union of w*h areas
    let inter = 99.0 * 99.0;
    let iou = inter / (299.0 * 299.0 + 99.0 * 99.0 - inter);
    assert!((s.components["iou"] - 0.25 * iou).abs() < 1e-12);
    let terms = [
        1.0 - 100.0 / 1000.0,
        1.0 - 100.0 / 500.0,
        1.0 - 100.0 / 1000.0,
        1.0 - 100.0 / 500.0,
    ];
    let hm = 4.0 / terms.iter().map(|t| 1.0 / t).sum::<f64>();
    assert!((s.components["box"] - 0.125 * hm).abs() < 1e-12);
    // centre outside: no hit
    let s = score(
        Profile::GuiG1,
        &gold,
        &json!("[{\"bbox_2d\": [200, 200, 260, 260]}]"),
        &o,
    )
    .unwrap();
    assert_eq!(s.components["hit"], 0.0);
    assert_eq!(s.components["iou"], 0.0);
    // unparsable prediction scores 0
    assert_eq!(
        score(Profile::GuiG1, &gold, &json!("no box"), &o)
            .unwrap()
            .reward,
        0.0
    );
}

#[test]
fn infigui_androidcontrol_constants() {
    let o = GuiOptions {
        width: Some(1000.0),
        height: Some(2000.0),
        ..GuiOptions::default()
    };
    let gold = json!({"action_type": "click", "x": 500, "y": 1000, "candidate_bboxes": [[100, 100, 200, 200]]});
    let click = |x: f64, y: f64| json!({"action": "click", "coordinate": [x, y]});
    assert_eq!(
        run(
            Profile::InfiguiR1Androidcontrol,
            gold.clone(),
            click(500.0, 1000.0),
            &o
        ),
        (1.0, true)
    );
    // within 0.04 * max(W, H) = 80 px of the point (Euclidean, pixels)
    assert_eq!(
        run(
            Profile::InfiguiR1Androidcontrol,
            gold.clone(),
            click(579.0, 1000.0),
            &o
        )
        .0,
        1.0
    );
    assert_eq!(
        run(
            Profile::InfiguiR1Androidcontrol,
            gold.clone(),
            click(581.0, 1000.0),
            &o
        ),
        (0.0, true)
    );
    // candidate box enlarged 1.2x: [90, 90, 210, 210]
    assert_eq!(
        run(
            Profile::InfiguiR1Androidcontrol,
            gold.clone(),
            click(209.0, 95.0),
            &o
        )
        .0,
        1.0
    );
    assert_eq!(
        run(
            Profile::InfiguiR1Androidcontrol,
            gold.clone(),
            click(211.0, 95.0),
            &o
        )
        .0,
        0.0
    );
    // scroll direction from a swipe's dominant axis
    let sc = json!({"action_type": "scroll", "direction": "down"});
    let sw = json!({"action": "swipe", "start": [500, 1500], "end": [520, 1900]});
    assert_eq!(
        run(Profile::InfiguiR1Androidcontrol, sc.clone(), sw, &o).0,
        1.0
    );
    assert_eq!(
        run(
            Profile::InfiguiR1Androidcontrol,
            sc,
            json!({"action": "scroll", "direction": "up"}),
            &o
        ),
        (0.0, true)
    );
    // text containment either way, case-insensitive
    let ty = json!({"action_type": "input_text", "text": "Coffee shops"});
    assert_eq!(
        run(
            Profile::InfiguiR1Androidcontrol,
            ty.clone(),
            json!({"action": "type", "text": "coffee"}),
            &o
        )
        .0,
        1.0
    );
    assert_eq!(
        run(
            Profile::InfiguiR1Androidcontrol,
            ty,
            json!({"action": "type", "text": "tea"}),
            &o
        ),
        (0.0, true)
    );
    // system buttons; open app by name or by clicking its box
    let back = json!({"action_type": "navigate_back"});
    assert_eq!(
        run(
            Profile::InfiguiR1Androidcontrol,
            back.clone(),
            json!({"action": "press", "button": "Back"}),
            &o
        )
        .0,
        1.0
    );
    assert_eq!(
        run(
            Profile::InfiguiR1Androidcontrol,
            back,
            json!({"action": "navigate_home"}),
            &o
        ),
        (0.0, true)
    );
    let open = json!({"action_type": "open_app", "app_name": "Gmail", "bbox": [0, 0, 100, 100]});
    assert_eq!(
        run(
            Profile::InfiguiR1Androidcontrol,
            open.clone(),
            json!({"action": "open_app", "app_name": "gmail"}),
            &o
        )
        .0,
        1.0
    );
    assert_eq!(
        run(
            Profile::InfiguiR1Androidcontrol,
            open,
            click(50.0, 50.0),
            &o
        )
        .0,
        1.0
    );
    let wait = json!({"action_type": "wait"});
    assert_eq!(
        run(Profile::InfiguiR1Androidcontrol, wait, json!("wait()"), &o).0,
        1.0
    );
}

#[test]
fn coordinate_frames_and_parsing() {
    let gold = json!({"action_type": "click", "x": 500, "y": 1000});
    // prediction in a 500x1000 resized image -> scaled to the 1000x2000 screen
    let o = GuiOptions {
        width: Some(1000.0),
        height: Some(2000.0),
        resized_width: Some(500.0),
        resized_height: Some(1000.0),
        pred_frame: Frame::Resized,
        ..GuiOptions::default()
    };
    assert_eq!(
        run(
            Profile::InfiguiR1Androidcontrol,
            gold.clone(),
            json!("click(250, 500)"),
            &o
        )
        .0,
        1.0
    );
    let o1000 = GuiOptions {
        pred_frame: Frame::Normalized1000,
        ..o.clone()
    };
    assert_eq!(
        run(
            Profile::InfiguiR1Androidcontrol,
            gold.clone(),
            json!("<answer>click(x=500, y=500)</answer>"),
            &o1000
        )
        .0,
        1.0
    );
    let o01 = GuiOptions {
        pred_frame: Frame::Normalized,
        ..o.clone()
    };
    assert_eq!(
        run(
            Profile::InfiguiR1Androidcontrol,
            gold.clone(),
            json!({"action": "click", "coordinate": [0.5, 0.5]}),
            &o01
        )
        .0,
        1.0
    );
    assert_eq!(
        run(
            Profile::InfiguiR1Androidcontrol,
            gold,
            json!({"action": "click", "coordinate": [0.5, 0.5]}),
            &o
        )
        .0,
        0.0
    );
    // the JSON entry point
    let out = verify_json(&json!({
        "gold": {"action": "click", "gt_bbox": [10, 10, 50, 50], "input_text": "no input text"},
        "pred": "<think>x</think><answer>[{'action': 'click', 'point': [20, 20], 'input_text': 'no input text'}]</answer>",
        "profile": "gui_r1"
    }))
    .unwrap();
    assert_eq!(out["reward"], 1.0);
    assert_eq!(out["components"]["format"], 1.0);
    assert_eq!(out["type_match"], true);
    assert!(verify_json(&json!({"gold": {}, "pred": "", "profile": "nope"})).is_err());
}

/// Runs `tests/data/gui/<profile>.jsonl`: cases built from each anchor's
/// code, README and data, with the expected rewards computed by the
/// anchor's own reward function at the commit recorded in each case's
/// `source` (regenerate with `scripts/gui_anchor_cases.py`).
fn anchor_cases(profile: Profile, file: &str, min_cases: usize) {
    let path = format!("{}/tests/data/gui/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut n = 0;
    let mut failures = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let case: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{path}:{}: {e}", i + 1));
        assert!(
            case["source"].as_str().is_some_and(|s| s.contains('@')),
            "{path}:{}: no source commit",
            i + 1
        );
        let o: GuiOptions = serde_json::from_value(case["options"].clone())
            .unwrap_or_else(|e| panic!("{path}:{}: options: {e}", i + 1));
        let s = score(profile, &case["gold"], &case["pred"], &o)
            .unwrap_or_else(|e| panic!("{path}:{}: {e}", i + 1));
        let exp = case["expected"].as_object().expect("expected");
        for (k, v) in exp {
            let want = v.as_f64().expect("number");
            let got = if k == "reward" {
                s.reward
            } else {
                // GUI-G1's components are reported weighted, as the anchor's functions return them
                s.components.get(k).copied().unwrap_or(f64::NAN)
            };
            if (got - want).abs() > 1e-9 {
                failures.push(format!(
                    "line {} ({}): {k} = {got}, anchor {want}",
                    i + 1,
                    case["note"]
                ));
            }
        }
        n += 1;
    }
    assert!(n >= min_cases, "{path}: only {n} cases");
    assert!(failures.is_empty(), "{path}:\n{}", failures.join("\n"));
}

#[test]
fn gui_r1_anchor_cases() {
    anchor_cases(Profile::GuiR1, "gui_r1.jsonl", 15);
}

#[test]
fn ui_r1_anchor_cases() {
    anchor_cases(Profile::UiR1, "ui_r1.jsonl", 10);
}

#[test]
fn gui_g1_anchor_cases() {
    anchor_cases(Profile::GuiG1, "gui_g1.jsonl", 10);
}

#[test]
fn infigui_r1_anchor_cases() {
    anchor_cases(
        Profile::InfiguiR1Androidcontrol,
        "infigui_r1_androidcontrol.jsonl",
        15,
    );
}

#[test]
fn anchor_option_names() {
    // pairs and the anchors' spellings deserialize next to ours
    let o: GuiOptions = serde_json::from_value(json!({
        "image_size": [1080, 2400], "scales": [1.5, 2.0],
        "BBOX_ENLARGE_FACTOR": 1.3, "point_distance_threshold": 0.05
    }))
    .unwrap();
    let r = o.resolved().unwrap();
    assert_eq!((r.width, r.height), (Some(1080.0), Some(2400.0)));
    assert_eq!((r.scale_x, r.scale_y), (1.5, 2.0));
    assert_eq!((r.enlarge_factor, r.point_threshold), (1.3, 0.05));
    let o: GuiOptions =
        serde_json::from_value(json!({"scale": [2, 2], "bbox_enlarge_factor": 1.0})).unwrap();
    assert_eq!(o.resolved().unwrap().scale_x, 2.0);
    // conflicting spellings are bad task data, named
    let o: GuiOptions =
        serde_json::from_value(json!({"image_size": [100, 200], "width": 300})).unwrap();
    let e = o.resolved().unwrap_err().to_string();
    assert!(e.contains("image_size"), "{e}");
    assert!(serde_json::from_value::<GuiOptions>(json!({"imagesize": [1, 2]})).is_err());
    // the box term and the distance rule need the screen size
    let e = score(
        Profile::GuiG1,
        &json!([0, 0, 10, 10]),
        &json!("[{'bbox_2d': [0, 0, 10, 10]}]"),
        &GuiOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("screen size"), "{e}");
    // unknown gold action for InfiGUI-R1 is named
    let o = GuiOptions {
        image_size: Some([100.0, 100.0]),
        ..GuiOptions::default()
    };
    let e = score(
        Profile::InfiguiR1Androidcontrol,
        &json!({"action": "teleport"}),
        &json!({"action": "wait"}),
        &o,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("teleport"), "{e}");
    // UI-R1's gold string without an action is named
    let e = score(
        Profile::UiR1,
        &json!("<answer>[]</answer>"),
        &json!("x"),
        &o,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("ui_r1 gold"), "{e}");
}
