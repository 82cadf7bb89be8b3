//! Markdown replies with the sections a prompt lists, so that a workflow parsing the answer
//! (`markdown_to_json`) gets a meaningful structure without a real model.
//!
//! The sections are the Markdown headings of the last user message (after its last "these
//! sections", when it says so, so that documents quoted earlier in the prompt are skipped).
//! The first paragraph under each heading in the prompt describes its body:
//! * mentions of `table` with quoted column names (`"Name", "Phone"`) give a table with those
//!   columns; a column followed by `(one of a, b, c)` or `(a|b|c)` takes those values in turn,
//!   one followed by `(1-5)` integers in that range;
//! * `list` gives a bulleted list (`numbered list`: a numbered one);
//! * anything else gives paragraphs; an empty description gives no body (subsections follow).
//!
//! A number word or digit in the description (`five`, `8`) sets the count of list items,
//! paragraphs or table rows (tables have at least three rows). Cell values follow the column's
//! name: the values of a list the prompt labels with it (`Scenarios: flood, power_outage` for a
//! `"Scenario"` column, one row each), phone numbers, priorities, ids (from the catalog quoted
//! in the prompt), names, addresses, sentences.

use std::sync::LazyLock;

use regex::Regex;

use crate::values::{self, Catalog};

/// A heading line: `#`…`######`, a space, the title.
static HEADING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(#{1,6})\s+(\S.*?)\s*#*\s*$").unwrap_or_else(|e| unreachable!("regex: {e}"))
});

/// A quoted column name, optionally followed by a parenthesised value rule.
static COLUMN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#""([^"\n]{1,60})"(?:\s*\(([^)\n]{1,200})\))?"#)
        .unwrap_or_else(|e| unreachable!("regex: {e}"))
});

/// An integer range such as `1-5` or `1–5`.
static RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(\d{1,4})\s*(?:-|–|to)\s*(\d{1,4})\s*$")
        .unwrap_or_else(|e| unreachable!("regex: {e}"))
});

/// A count in words or digits.
static COUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|\d{1,2})\b")
        .unwrap_or_else(|e| unreachable!("regex: {e}"))
});

/// How the values of one table column are chosen.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Rule {
    /// By the column's name.
    Free,
    /// These values in turn.
    OneOf(Vec<String>),
    /// Integers in this range, in turn.
    Range(i64, i64),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Column {
    pub name: String,
    pub rule: Rule,
}

/// The body the prompt asks for under a heading.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Body {
    Nothing,
    Paragraphs(usize),
    List { items: usize, numbered: bool },
    Table { columns: Vec<Column>, rows: usize },
}

/// One section of the requested document.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Section {
    pub level: usize,
    pub title: String,
    pub body: Body,
}

/// The sections the prompt lists, or `None` when it lists none.
pub(crate) fn requested_sections(prompt: &str) -> Option<Vec<Section>> {
    let lower = prompt.to_lowercase();
    let start = lower
        .rfind("these sections")
        .and_then(|at| prompt.get(at..))
        .map_or(prompt, |rest| rest);
    let mut sections: Vec<(usize, String, Vec<&str>)> = Vec::new();
    let mut in_fence = false;
    for line in start.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        match HEADING.captures(line).filter(|_| !in_fence) {
            Some(c) => {
                let level = c.get(1).map_or(1, |m| m.as_str().len());
                let title = c.get(2).map_or("", |m| m.as_str()).to_owned();
                sections.push((level, title, Vec::new()));
            }
            None => {
                if let Some((_, _, description)) = sections.last_mut() {
                    description.push(line);
                }
            }
        }
    }
    if sections.is_empty() {
        return None;
    }
    Some(
        sections
            .into_iter()
            .map(|(level, title, description)| Section {
                level,
                title,
                body: body(&description.join("\n")),
            })
            .collect(),
    )
}

/// The body asked for by a description's first paragraph (what follows is other context).
fn body(description: &str) -> Body {
    let text = description.trim();
    let text = text.split("\n\n").next().unwrap_or(text).trim();
    if text.is_empty() {
        return Body::Nothing;
    }
    let lower = text.to_lowercase();
    let count = count(text);
    if lower.contains("table") {
        let columns: Vec<Column> = COLUMN
            .captures_iter(text)
            .filter_map(|c| {
                let name = c.get(1)?.as_str().trim().to_owned();
                let rule = c.get(2).map_or(Rule::Free, |m| rule(m.as_str()));
                Some(Column { name, rule })
            })
            .collect();
        if !columns.is_empty() {
            let widest = columns
                .iter()
                .map(|c| match &c.rule {
                    Rule::OneOf(values) => values.len(),
                    _ => 0,
                })
                .max()
                .unwrap_or(0);
            let rows = count.unwrap_or(0).max(3).max(widest.min(6));
            return Body::Table { columns, rows };
        }
    }
    if lower.contains("list") {
        return Body::List {
            items: count.unwrap_or(3).clamp(1, 20),
            numbered: lower.contains("numbered"),
        };
    }
    Body::Paragraphs(count.unwrap_or(1).clamp(1, 4))
}

/// The first count in the text outside quotes and parentheses.
fn count(text: &str) -> Option<usize> {
    let mut plain = String::with_capacity(text.len());
    let (mut quoted, mut depth) = (false, 0usize);
    for ch in text.chars() {
        match ch {
            '"' => quoted = !quoted,
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if !quoted && depth == 0 => plain.push(ch),
            _ => plain.push(' '),
        }
    }
    let word = COUNT.captures(&plain)?.get(1)?.as_str().to_lowercase();
    let n = match word.as_str() {
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        digits => digits.parse().ok()?,
    };
    (n > 0).then_some(n)
}

/// `one of a, b, c`, `a|b|c` or `a, b or c` → the values; `1-5` → a range.
fn rule(text: &str) -> Rule {
    if let Some(c) = RANGE.captures(text) {
        let lo: Option<i64> = c.get(1).and_then(|m| m.as_str().parse().ok());
        let hi: Option<i64> = c.get(2).and_then(|m| m.as_str().parse().ok());
        if let (Some(lo), Some(hi)) = (lo, hi) {
            return Rule::Range(lo.min(hi), lo.max(hi));
        }
    }
    let stripped = text.trim();
    let list = stripped
        .strip_prefix("one of:")
        .or_else(|| stripped.strip_prefix("one of"))
        .map(str::trim);
    let separated = stripped.contains('|');
    let Some(list) = list.or(separated.then_some(stripped)) else {
        return Rule::Free;
    };
    let values: Vec<String> = list
        .split(['|', ','])
        .flat_map(|part| part.split(" or "))
        .map(|v| v.trim().trim_matches(['"', '\'', '`', '.']).to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    if values.len() >= 2 {
        Rule::OneOf(values)
    } else {
        Rule::Free
    }
}

/// Renders the requested sections; `seed` varies the values, `subject` is the prompt's gist.
pub(crate) fn render(sections: &[Section], seed: u64, subject: &str, catalog: &Catalog) -> String {
    let mut out = String::new();
    for (index, section) in sections.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        out.push_str(&"#".repeat(section.level));
        out.push(' ');
        out.push_str(&section.title);
        out.push('\n');
        let salt = seed ^ values::hash(&section.title);
        match &section.body {
            Body::Nothing => {}
            Body::Paragraphs(n) => {
                for i in 0..*n {
                    out.push('\n');
                    out.push_str(&values::paragraph(&section.title, subject, i));
                    out.push('\n');
                }
            }
            Body::List { items, numbered } => {
                out.push('\n');
                for i in 0..*items {
                    let marker = if *numbered {
                        format!("{}.", i + 1)
                    } else {
                        "-".to_owned()
                    };
                    out.push_str(&format!(
                        "{marker} {}\n",
                        values::list_item(&section.title, i)
                    ));
                }
            }
            Body::Table { columns, rows } => {
                out.push('\n');
                let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                out.push_str(&format!("| {} |\n", names.join(" | ")));
                out.push_str(&format!("|{}\n", " --- |".repeat(columns.len())));
                // A column the prompt lists values for has one row per value.
                let rows = columns
                    .iter()
                    .filter(|c| c.rule == Rule::Free)
                    .find_map(|c| catalog.list_for(&c.name))
                    .map_or(*rows, |values| values.len().clamp(1, 12));
                let rows = &rows;
                let ids = catalog.pick(*rows, salt);
                for row in 0..*rows {
                    let id = ids.get(row).map(String::as_str);
                    let cells: Vec<String> = columns
                        .iter()
                        .map(|c| values::cell(c, row, salt, &section.title, id, catalog))
                        .map(|v| v.replace('|', "/"))
                        .collect();
                    out.push_str(&format!("| {} |\n", cells.join(" | ")));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPT: &str = "Context first.\n# Not a section\nAnswer with exactly these sections:\n\n\
        # Summary\nTwo paragraphs.\n\n# Contacts\n## Medical\nA table with the columns \"Name\", \
        \"Phone\", \"Priority\" (1-5), \"Kind\" (one of primary, secondary, out_of_area).\n\
        # Steps\nA bulleted list of five short steps.\n# Plan\nA numbered list.\n";

    #[test]
    fn sections_are_read_after_the_last_request() {
        let sections = requested_sections(PROMPT).expect("sections");
        let titles: Vec<&str> = sections.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(titles, ["Summary", "Contacts", "Medical", "Steps", "Plan"]);
        assert_eq!(sections[0].body, Body::Paragraphs(2));
        assert_eq!(sections[1].body, Body::Nothing);
        assert_eq!(sections[2].level, 2);
        let Body::Table { columns, rows } = &sections[2].body else {
            panic!("table expected: {:?}", sections[2]);
        };
        assert_eq!(*rows, 3);
        assert_eq!(columns[2].rule, Rule::Range(1, 5));
        assert_eq!(
            columns[3].rule,
            Rule::OneOf(vec![
                "primary".into(),
                "secondary".into(),
                "out_of_area".into()
            ])
        );
        assert_eq!(
            sections[3].body,
            Body::List {
                items: 5,
                numbered: false
            }
        );
        assert_eq!(
            sections[4].body,
            Body::List {
                items: 3,
                numbered: true
            }
        );
        assert!(requested_sections("Tell me about cats.").is_none());
    }

    #[test]
    fn rules_are_parsed() {
        assert_eq!(rule("1–5"), Rule::Range(1, 5));
        assert_eq!(
            rule("low|medium|high"),
            Rule::OneOf(vec!["low".into(), "medium".into(), "high".into()])
        );
        assert_eq!(
            rule("one of must, should or could"),
            Rule::OneOf(vec!["must".into(), "should".into(), "could".into()])
        );
        assert_eq!(rule("in days"), Rule::Free);
        assert_eq!(count("with \"Two\" (3) columns, eight rows"), Some(8));
    }

    #[test]
    fn rendering_is_deterministic_and_shaped() {
        let sections = requested_sections(PROMPT).expect("sections");
        let catalog = Catalog::default();
        let a = render(&sections, 7, "a household in Lyon", &catalog);
        assert_eq!(a, render(&sections, 7, "a household in Lyon", &catalog));
        assert!(a.starts_with("# Summary\n\n"), "{a}");
        assert!(
            a.contains(
                "## Medical\n\n| Name | Phone | Priority | Kind |\n| --- | --- | --- | --- |\n"
            ),
            "{a}"
        );
        assert!(
            a.contains("| primary |") && a.contains("| out_of_area |"),
            "{a}"
        );
        assert_eq!(a.matches("\n- ").count(), 5, "{a}");
        assert!(a.contains("\n1. ") && a.contains("\n3. "), "{a}");
    }
}
