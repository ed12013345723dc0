//! Tokenizer encode ids and chat-template renderings against transformers (fixtures).

use grpo_model::tokenizer::Tokenizer;

use crate::common::*;

#[test]
fn encode_matches_transformers() {
    let dir = fixtures().join("tokenizer");
    let tok = Tokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    let cases = read_json(&dir.join("encode.json"));
    for c in cases.as_array().unwrap() {
        let text = c["text"].as_str().unwrap();
        assert_eq!(
            tok.encode(text, false).unwrap(),
            ids(&c["ids"]),
            "encode {text:?}"
        );
        assert_eq!(
            tok.decode(&ids(&c["ids"]), false).unwrap(),
            c["decoded"].as_str().unwrap()
        );
    }
}

#[test]
fn chat_templates_render_exactly_as_transformers() {
    for name in ["qwen2.5", "llama3"] {
        let dir = fixtures().join("chat").join(name);
        let tok = Tokenizer::from_dir(&dir).unwrap();
        let tmpl = tok
            .chat_template()
            .unwrap()
            .expect("fixture has a template");
        let cases = read_json(&dir.join("rendered.json"));
        for (i, c) in cases.as_array().unwrap().iter().enumerate() {
            let agp = c["add_generation_prompt"].as_bool().unwrap();
            let tools = c.get("tools");
            let text = tmpl.render(&c["messages"], tools, agp).unwrap();
            assert_eq!(text, c["rendered"].as_str().unwrap(), "{name} case {i}");
            assert_eq!(
                tok.encode(&text, false).unwrap(),
                ids(&c["ids"]),
                "{name} case {i} ids"
            );
            if tools.is_none() {
                assert_eq!(
                    tok.apply_chat_template(&c["messages"], agp).unwrap(),
                    ids(&c["ids"])
                );
            }
        }
    }
}
