//! Tests of `markdown_to_json` (kept apart: the Markdown fixtures are long).

use super::*;

fn run(markdown: &str) -> Value {
    MarkdownToJson::compile(None, SectionKeyStyle::Text)
        .expect("compiles")
        .apply(&Value::String(markdown.into()))
        .expect("applies")
}

const EMERGENCY: &str = "# Emergency Plan for Lisbon
Stay calm and follow these steps.
## Emergency Contacts
| Service | Number | Notes |
|---|---|---|
| Police | 112 | General emergency |
| Fire | 112 | |
| Tourist Police | +351 213 421 623 | English spoken |
## Nearby Hospitals
- **Hospital de Santa Maria** — Av. Prof. Egas Moniz
- Hospital São José
## What to Do
1. Call 112
2. Share your location
### If You Lose Your Passport
Contact your embassy.
";

#[test]
fn emergency_plan_answer() {
    assert_eq!(
        run(EMERGENCY),
        json!({
            "Emergency Plan for Lisbon": {
                "content": "Stay calm and follow these steps.",
                "Emergency Contacts": [
                    {"Service": "Police", "Number": "112", "Notes": "General emergency"},
                    {"Service": "Fire", "Number": "112", "Notes": ""},
                    {"Service": "Tourist Police", "Number": "+351 213 421 623",
                     "Notes": "English spoken"}
                ],
                "Nearby Hospitals": [
                    "Hospital de Santa Maria — Av. Prof. Egas Moniz",
                    "Hospital São José"
                ],
                "What to Do": {
                    "items": ["Call 112", "Share your location"],
                    "If You Lose Your Passport": {"content": "Contact your embassy."}
                }
            }
        })
    );
}

#[test]
fn emergency_plan_in_snake_case_from_a_field() {
    let op =
        MarkdownToJson::compile(Some("$.answer"), SectionKeyStyle::SnakeCase).expect("compiles");
    let out = op
        .apply(&json!({"answer": EMERGENCY, "model": "x"}))
        .expect("applies");
    let plan = &out["emergency_plan_for_lisbon"];
    assert_eq!(
        plan["emergency_contacts"][2]["Number"],
        json!("+351 213 421 623")
    );
    assert_eq!(plan["nearby_hospitals"][1], json!("Hospital São José"));
    assert_eq!(
        plan["what_to_do"]["if_you_lose_your_passport"],
        json!({"content": "Contact your embassy."})
    );
}

#[test]
fn doc_example() {
    assert_eq!(
        run("Intro.\n# Trip\n## Packing\n- Passport\n- *Charger*\n## Notes\nSee [map](http://m.example)."),
        json!({"content": "Intro.", "Trip": {"Packing": ["Passport", "Charger"],
               "Notes": {"content": "See map."}}})
    );
}

#[test]
fn levels_close_and_skip() {
    let md = "# A\n### A3\ntext\n## A2\n# B\n## B2\nx\n\ny\nz";
    assert_eq!(
        run(md),
        json!({
            "A": {"A3": {"content": "text"}, "A2": {}},
            "B": {"B2": {"content": "x\n\ny z"}}
        })
    );
}

#[test]
fn repeated_headings_and_colliding_keys_get_suffixes() {
    let md = "## Step\none\n## Step\ntwo\n## Step\nthree\n## content\nc";
    assert_eq!(
        run(md),
        json!({
            "Step": {"content": "one"},
            "Step (2)": {"content": "two"},
            "Step (3)": {"content": "three"},
            "content": {"content": "c"}
        })
    );
    let md = "Intro\n# Content\nbody\n# Items!\n- a\n- b\n\npara\n\n1. c";
    let op = MarkdownToJson::compile(None, SectionKeyStyle::SnakeCase).expect("compiles");
    assert_eq!(
        op.apply(&json!(md)).expect("applies"),
        json!({
            "content": "Intro",
            "content_2": {"content": "body"},
            "items": {"content": "para", "items": ["a", "b"], "items_2": ["c"]}
        })
    );
}

#[test]
fn nested_lists_become_objects_with_items() {
    let md = "## Plan\n- Pack\n  - Passport\n  - Charger\n    1. USB-C\n- Go\n";
    assert_eq!(
        run(md),
        json!({"Plan": [
            {"text": "Pack", "items": [
                "Passport",
                {"text": "Charger", "items": ["USB-C"]}
            ]},
            "Go"
        ]})
    );
    // Loose items keep their paragraphs.
    let md = "- first\n\n  more\n\n- second";
    assert_eq!(run(md), json!({"items": ["first\n\nmore", "second"]}));
}

#[test]
fn inline_formatting_code_quotes_and_html() {
    let md = "# Títle `x` **bold**\nA *b* ~~c~~ [d](http://e) ![alt](i.png) <b>f</b>  \nnext\n\n\
              > quoted\n\n```\nlet a = 1;\n```\n\n---\n\n<div>drop</div>\n";
    assert_eq!(
        run(md),
        json!({"Títle x bold": {"content": "A b c d alt f\nnext\n\nquoted\n\nlet a = 1;"}})
    );
}

#[test]
fn tables_with_ragged_rows_and_odd_headers() {
    let md = "| Name | | Name |\n|---|---|---|\n| a | b |\n| 日本 | ✓ | z |\n";
    assert_eq!(
        run(md),
        json!({"table": [
            {"Name": "a", "column 2": "b", "Name (2)": ""},
            {"Name": "日本", "column 2": "✓", "Name (2)": "z"}
        ]})
    );
}

#[test]
fn empty_and_plain_text() {
    assert_eq!(run(""), json!({}));
    assert_eq!(run("   \n\n"), json!({}));
    assert_eq!(run("just text"), json!({"content": "just text"}));
    assert_eq!(
        run("- only\n- a list"),
        json!({"items": ["only", "a list"]})
    );
    assert_eq!(run("#\n"), json!({"": {}}));
}

#[test]
fn snake_case_keys() {
    assert_eq!(snake_case("What's Next?"), "whats_next");
    assert_eq!(snake_case("  São José / Área 51 "), "são_josé_área_51");
    assert_eq!(snake_case("!!!"), "");
}

#[test]
fn wrong_input_and_bad_spec() {
    let op = MarkdownToJson::compile(None, SectionKeyStyle::Text).expect("compiles");
    assert!(matches!(
        op.apply(&json!({"text": "# a"})),
        Err(TransformError::InputType { got: "object", .. })
    ));
    let op = MarkdownToJson::compile(Some("$.text"), SectionKeyStyle::Text).expect("compiles");
    assert!(op.apply(&json!({"text": ["# a"]})).is_err());
    assert!(op.apply(&json!({})).is_err());
    let problems =
        MarkdownToJson::compile(Some("$["), SectionKeyStyle::Text).expect_err("bad path");
    assert_eq!(problems[0].field, "field");
    let style: SectionKeyStyle = serde_json::from_value(json!("snake_case")).expect("style");
    assert_eq!(style, SectionKeyStyle::SnakeCase);
    assert!(serde_json::from_value::<SectionKeyStyle>(json!("camel")).is_err());
}

#[test]
fn very_deep_lists_are_flattened() {
    let md = format!("{}x", "- ".repeat(5000));
    let out = run(&md);
    let mut depth = 0;
    let mut node = &out["items"];
    while let Some(first) = node.get(0) {
        depth += 1;
        node = &first["items"];
    }
    assert_eq!(depth, MAX_LIST_DEPTH);
    assert!(serde_json::to_string(&out).is_ok());
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// A Markdown block: a heading (level, title), a paragraph, or a list.
    #[derive(Clone, Debug)]
    enum Block {
        Heading(usize, String),
        Paragraph(String),
        List(Vec<String>),
    }

    fn blocks() -> impl Strategy<Value = Vec<Block>> {
        let words = "[a-z]{1,8}( [a-z]{1,8}){0,3}";
        let block = prop_oneof![
            (1usize..=6, "[A-Z][a-z]{1,8}( [A-Z][a-z]{1,8}){0,2}")
                .prop_map(|(level, title)| Block::Heading(level, title)),
            words.prop_map(Block::Paragraph),
            proptest::collection::vec(words, 1..4).prop_map(Block::List),
        ];
        proptest::collection::vec(block, 0..24)
    }

    fn markdown(blocks: &[Block]) -> String {
        let mut text = String::new();
        for block in blocks {
            match block {
                Block::Heading(level, title) => {
                    text.push_str(&format!("{} {title}\n\n", "#".repeat(*level)));
                }
                Block::Paragraph(words) => text.push_str(&format!("{words}\n\n")),
                Block::List(items) => {
                    for item in items {
                        text.push_str(&format!("- {item}\n"));
                    }
                    text.push('\n');
                }
            }
        }
        text
    }

    /// How many keys in `value`, at any depth, name each heading (a repeated heading's key
    /// carries a ` (n)` suffix).
    fn heading_keys(value: &Value, counts: &mut BTreeMap<String, usize>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let base = match key.rsplit_once(" (") {
                        Some((base, n)) if n.ends_with(')') => base,
                        _ => key.as_str(),
                    };
                    if base.starts_with(|c: char| c.is_ascii_uppercase()) {
                        *counts.entry(base.to_owned()).or_default() += 1;
                    }
                    heading_keys(child, counts);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| heading_keys(item, counts)),
            _ => {}
        }
    }

    proptest! {
        /// Any text at all: an object or a clear error, never a panic.
        #[test]
        fn never_panics(text in any::<String>()) {
            let out = MarkdownToJson::compile(None, SectionKeyStyle::Text)
                .expect("compiles")
                .apply(&Value::String(text));
            prop_assert!(out.is_ok_and(|v| v.is_object()));
        }

        /// Markdown-shaped text (headings, emphasis, lists, tables, fences) never panics
        /// either, in either key style.
        #[test]
        fn never_panics_on_markdown_shapes(
            text in "([#>*_`|\\-+ 0-9.\\[\\]()!a-zA-Z]{0,12}\n{0,2}){0,30}",
            snake in any::<bool>(),
        ) {
            let style = if snake { SectionKeyStyle::SnakeCase } else { SectionKeyStyle::Text };
            let out = MarkdownToJson::compile(None, style)
                .expect("compiles")
                .apply(&Value::String(text));
            prop_assert!(out.is_ok());
        }

        /// Every heading becomes exactly one key of the output, whatever its level and place.
        #[test]
        fn keeps_every_heading(blocks in blocks()) {
            let text = markdown(&blocks);
            let out = run(&text);
            let mut expected = BTreeMap::new();
            for block in &blocks {
                if let Block::Heading(_, title) = block {
                    *expected.entry(title.clone()).or_insert(0usize) += 1;
                }
            }
            let mut found = BTreeMap::new();
            heading_keys(&out, &mut found);
            prop_assert_eq!(found, expected, "{}\n{}", text, out);
        }
    }
}
