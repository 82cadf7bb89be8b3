//! `markdown_to_json`: turns Markdown (e.g. an LLM's answer) into nested JSON, one key per
//! heading.
//!
//! Shape: `{"operation": "markdown_to_json", "field": "<JSONPath>", "section_key_style":
//! "text"}`; both optional. `section_key_style` is `"text"` (default) or `"snake_case"`.
//!
//! - The Markdown is the input, which must then be a string, or with `field` the single string
//!   that RFC 9535 JSONPath selects in the input. It is parsed as CommonMark with GFM tables
//!   and strikethrough.
//! - The output is an object (the root). Each heading opens a section, a key in the innermost
//!   open section of a lower level: a `##` after a `#` nests in it, a later `#` closes both.
//!   Skipped levels nest directly (a `###` right under a `#` is its child). A heading inside a
//!   list item or block quote does not open a section: it is text.
//! - Section keys are the heading's plain text (trimmed); with `"snake_case"` they are lowercased,
//!   apostrophes dropped and every run of other non-alphanumeric characters replaced by `_`
//!   (`"What's Next?"` → `"whats_next"`, `"São José"` → `"são_josé"`). Table column keys are
//!   not affected.
//! - A section is an object with:
//!   - `"content"`: its paragraphs (and code blocks and block quotes' text) joined with `"\n\n"`,
//!     when it has any;
//!   - `"items"`: a list in it (bulleted or numbered alike); `"table"`: a table in it;
//!   - one member per subsection.
//!
//!   Exception: a section whose whole body is a single list or a single table, with no
//!   subsections, is that array itself. A section with no body is `{}`. The root follows the
//!   same rules (text before the first heading is its `"content"`) but is always an object.
//! - A key already taken in the same object, e.g. a repeated heading or a second list, gets a
//!   suffix: `" (2)"`, `" (3)"`… (`"_2"`, `"_3"`… with `"snake_case"`).
//! - A list is an array with one element per item: the item's text (its paragraphs joined with
//!   `"\n\n"`), or, when the item holds nested lists, `{"text": <its text>, "items": [<the nested
//!   lists' items, by the same rule>]}`. A table inside an item is added to its `"items"`.
//!   Lists nested more than 16 deep are flattened: their items become paragraphs of the
//!   16th-level item's text.
//! - A table is an array of objects, one per body row, keyed by the header row's cells (an empty
//!   header cell becomes `"column N"`, N counted from 1; repeated ones get suffixes); every value
//!   is the cell's text (`""` when empty or missing).
//! - Inline formatting becomes plain text: emphasis, code spans and links keep their text (link
//!   targets are dropped), images keep their alt text, line breaks inside a paragraph become a
//!   space (hard breaks `"\n"`), raw HTML is dropped, numbering of ordered lists is not kept.
//!
//! Example: `{"operation": "markdown_to_json"}` turns
//! `"Intro.\n# Trip\n## Packing\n- Passport\n- *Charger*\n## Notes\nSee [map](http://m.example)."`
//! into `{"content": "Intro.", "Trip": {"Packing": ["Passport", "Charger"], "Notes": {"content":
//! "See map."}}}`.

use std::mem::take;

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::common::{optional_path, Path};
use super::{type_name, SpecProblem, TransformError};

const OPERATION: &str = "markdown_to_json";
/// Lists nested deeper than this are flattened, keeping the output's depth reasonable.
const MAX_LIST_DEPTH: usize = 16;

/// `section_key_style` of a `markdown_to_json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionKeyStyle {
    #[default]
    Text,
    SnakeCase,
}

#[derive(Clone, Debug)]
pub struct MarkdownToJson {
    field: Option<Path>,
    style: SectionKeyStyle,
}

impl MarkdownToJson {
    pub fn compile(field: Option<&str>, style: SectionKeyStyle) -> Result<Self, Vec<SpecProblem>> {
        let mut problems = Vec::new();
        let field = optional_path("field", field, &mut problems);
        if problems.is_empty() {
            Ok(Self { field, style })
        } else {
            Err(problems)
        }
    }

    pub fn apply(&self, input: &Value) -> Result<Value, TransformError> {
        let text = match (&self.field, input) {
            (Some(path), _) => path.pick_str(OPERATION, input)?,
            (None, Value::String(s)) => s.as_str(),
            (None, other) => {
                return Err(TransformError::InputType {
                    operation: OPERATION,
                    expected: "string (or give `field`)",
                    got: type_name(other),
                })
            }
        };
        let mut builder = Builder::default();
        let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
        for event in Parser::new_ext(text, options) {
            builder.event(event);
        }
        Ok(builder.finish().into_value(true, self.style))
    }
}

enum Block {
    Text(String),
    List(Vec<Value>),
    Table(Vec<Value>),
}

#[derive(Default)]
struct Section {
    title: String,
    level: usize,
    blocks: Vec<Block>,
    children: Vec<Section>,
}

impl Section {
    fn into_value(self, root: bool, style: SectionKeyStyle) -> Value {
        let mut blocks = self.blocks;
        if !root && self.children.is_empty() && blocks.len() == 1 {
            match blocks.pop() {
                Some(Block::List(items) | Block::Table(items)) => return Value::Array(items),
                Some(other) => blocks.push(other),
                None => {}
            }
        }
        let mut object = Map::new();
        let mut paragraphs = Vec::new();
        let mut arrays = Vec::new();
        for block in blocks {
            match block {
                Block::Text(text) => paragraphs.push(text),
                Block::List(items) => arrays.push(("items", items)),
                Block::Table(rows) => arrays.push(("table", rows)),
            }
        }
        if !paragraphs.is_empty() {
            object.insert("content".into(), Value::String(paragraphs.join("\n\n")));
        }
        for (key, array) in arrays {
            insert_unique(&mut object, key.into(), Value::Array(array), style);
        }
        for child in self.children {
            let key = match style {
                SectionKeyStyle::Text => child.title.clone(),
                SectionKeyStyle::SnakeCase => snake_case(&child.title),
            };
            insert_unique(&mut object, key, child.into_value(false, style), style);
        }
        Value::Object(object)
    }
}

#[derive(Default)]
struct Item {
    parts: Vec<String>,
    nested: Vec<Value>,
}

#[derive(Default)]
struct Table {
    header: Vec<String>,
    row: Vec<String>,
    rows: Vec<Value>,
}

/// Folds pulldown-cmark's events into sections. Inline text collects in `text` until the block
/// holding it ends, then goes to the innermost open table cell, list item or section.
#[derive(Default)]
struct Builder {
    /// The root, then the open sections, innermost last.
    sections: Vec<Section>,
    /// Items of the open lists, innermost last.
    lists: Vec<Vec<Value>>,
    items: Vec<Item>,
    table: Option<Table>,
    text: String,
    /// The level of the heading being read, when it opens a section.
    heading: Option<usize>,
    quotes: usize,
    /// How deep we are in lists nested beyond `MAX_LIST_DEPTH`.
    flattened: usize,
}

impl Builder {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                self.flush();
                if self.lists.is_empty() && self.quotes == 0 && self.table.is_none() {
                    self.heading = Some(level as usize);
                }
            }
            Event::End(TagEnd::Heading(_)) => match self.heading.take() {
                Some(level) => {
                    let title = take(&mut self.text).trim().to_owned();
                    self.open_section(level, title);
                }
                None => self.flush(),
            },
            Event::Start(Tag::List(_)) if self.lists.len() >= MAX_LIST_DEPTH => {
                self.flush();
                self.flattened += 1;
            }
            Event::End(TagEnd::List(_)) if self.flattened > 0 => self.flattened -= 1,
            Event::Start(Tag::Item) | Event::End(TagEnd::Item) if self.flattened > 0 => {
                self.flush()
            }
            Event::Start(Tag::List(_)) => {
                self.flush();
                self.lists.push(Vec::new());
            }
            Event::End(TagEnd::List(_)) => {
                let items = self.lists.pop().unwrap_or_default();
                match self.items.last_mut() {
                    Some(parent) => parent.nested.extend(items),
                    None => self.push_block(Block::List(items)),
                }
            }
            Event::Start(Tag::Item) => {
                self.flush();
                self.items.push(Item::default());
            }
            Event::End(TagEnd::Item) => {
                self.flush();
                let item = self.items.pop().unwrap_or_default();
                let text = item.parts.join("\n\n");
                let value = if item.nested.is_empty() {
                    Value::String(text)
                } else {
                    json!({"text": text, "items": item.nested})
                };
                if let Some(list) = self.lists.last_mut() {
                    list.push(value);
                }
            }
            Event::Start(Tag::Table(_)) => {
                self.flush();
                self.table = Some(Table::default());
            }
            Event::End(TagEnd::TableHead) => {
                if let Some(table) = &mut self.table {
                    table.header = take(&mut table.row);
                }
            }
            Event::End(TagEnd::TableCell) => {
                let cell = take(&mut self.text).trim().to_owned();
                if let Some(table) = &mut self.table {
                    table.row.push(cell);
                }
            }
            Event::End(TagEnd::TableRow) => {
                if let Some(table) = &mut self.table {
                    let cells = take(&mut table.row);
                    table.rows.push(table_row(&table.header, cells));
                }
            }
            Event::End(TagEnd::Table) => {
                let rows = self.table.take().map(|t| t.rows).unwrap_or_default();
                match self.items.last_mut() {
                    Some(item) => item.nested.push(Value::Array(rows)),
                    None => self.push_block(Block::Table(rows)),
                }
            }
            Event::Start(Tag::BlockQuote(_)) => {
                self.flush();
                self.quotes += 1;
            }
            Event::End(TagEnd::BlockQuote(_)) => {
                self.flush();
                self.quotes = self.quotes.saturating_sub(1);
            }
            Event::Start(Tag::CodeBlock(_) | Tag::Paragraph)
            | Event::End(TagEnd::Paragraph | TagEnd::CodeBlock)
            | Event::Rule => self.flush(),
            Event::Text(text)
            | Event::Code(text)
            | Event::InlineMath(text)
            | Event::DisplayMath(text) => self.text.push_str(&text),
            Event::SoftBreak => self.text.push(' '),
            Event::HardBreak => self.text.push('\n'),
            Event::TaskListMarker(done) => self.text.push_str(if done { "[x] " } else { "[ ] " }),
            // Emphasis, links, images…: only their text matters. Raw HTML is dropped.
            _ => {}
        }
    }

    /// Hands the collected text to the innermost list item or section.
    fn flush(&mut self) {
        let text = take(&mut self.text);
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        match self.items.last_mut() {
            Some(item) => item.parts.push(text.to_owned()),
            None => self.push_block(Block::Text(text.to_owned())),
        }
    }

    fn push_block(&mut self, block: Block) {
        if self.sections.is_empty() {
            self.sections.push(Section::default());
        }
        if let Some(section) = self.sections.last_mut() {
            section.blocks.push(block);
        }
    }

    /// Closes the open sections of `level` or deeper, then opens a new one.
    fn open_section(&mut self, level: usize, title: String) {
        if self.sections.is_empty() {
            self.sections.push(Section::default());
        }
        self.close_sections(level);
        self.sections.push(Section {
            title,
            level,
            ..Section::default()
        });
    }

    fn close_sections(&mut self, level: usize) {
        while self.sections.len() > 1 && self.sections.last().is_some_and(|s| s.level >= level) {
            if let Some(done) = self.sections.pop() {
                if let Some(parent) = self.sections.last_mut() {
                    parent.children.push(done);
                }
            }
        }
    }

    fn finish(mut self) -> Section {
        self.flush();
        self.close_sections(0);
        self.sections.pop().unwrap_or_default()
    }
}

fn table_row(header: &[String], cells: Vec<String>) -> Value {
    let mut row = Map::new();
    let mut cells = cells.into_iter();
    for (index, name) in header.iter().enumerate() {
        let key = if name.is_empty() {
            format!("column {}", index + 1)
        } else {
            name.clone()
        };
        let value = Value::String(cells.next().unwrap_or_default());
        insert_unique(&mut row, key, value, SectionKeyStyle::Text);
    }
    Value::Object(row)
}

/// Inserts under `key`, or under `key (2)`, `key (3)`… (`key_2`… in snake_case) if it is taken.
fn insert_unique(
    object: &mut Map<String, Value>,
    key: String,
    value: Value,
    style: SectionKeyStyle,
) {
    if !object.contains_key(&key) {
        object.insert(key, value);
        return;
    }
    for n in 2usize.. {
        let candidate = match style {
            SectionKeyStyle::Text => format!("{key} ({n})"),
            SectionKeyStyle::SnakeCase => format!("{key}_{n}"),
        };
        if !object.contains_key(&candidate) {
            object.insert(candidate, value);
            return;
        }
    }
}

fn snake_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut separate = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if separate && !out.is_empty() {
                out.push('_');
            }
            separate = false;
            out.extend(c.to_lowercase());
        } else if c != '\'' && c != '\u{2019}' {
            separate = true;
        }
    }
    out
}

#[cfg(test)]
#[path = "markdown_to_json_tests.rs"]
mod tests;
