//! Realistic, deterministic values for structured replies: phone numbers, names, addresses,
//! sentences, and ids taken from a catalog quoted in the prompt (so that a recommendation names
//! an item that exists).

use std::sync::LazyLock;

use regex::Regex;

use crate::content::{fnv1a, mix};
use crate::markdown::{Column, Rule};

/// `id: "x", name: "y"` or `"id": "x", "name": "y"` on one line of the prompt.
static ENTRY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#""?\bid"?\s*[:=]\s*"([^"\n]{1,100})"(?:[^\n]*?"?\bname"?\s*[:=]\s*"([^"\n]{1,200})")?"#,
    )
    .unwrap_or_else(|e| unreachable!("regex: {e}"))
});

const PREFIXES: [&str; 8] = [
    "Central",
    "Riverside",
    "Old Town",
    "Northside",
    "Harbour",
    "Hillcrest",
    "Parkview",
    "Lakeside",
];
const NOUNS: [&str; 6] = ["Center", "Office", "Hall", "Station", "Service", "Point"];
const STREETS: [&str; 8] = [
    "Main", "Market", "Station", "Church", "Park", "Harbour", "Mill", "Bridge",
];
const VERBS: [&str; 10] = [
    "Check", "Prepare", "Review", "Store", "Share", "Test", "Plan", "Update", "Label", "Confirm",
];
const OBJECTS: [&str; 10] = [
    "the essentials for",
    "who is responsible for",
    "a written copy of",
    "the timing of",
    "the budget for",
    "a backup for",
    "the checklist for",
    "the contacts for",
    "the supplies for",
    "the fallback for",
];

/// A stable hash of a text.
pub(crate) fn hash(text: &str) -> u64 {
    fnv1a(text.as_bytes())
}

/// A phone number in the range reserved for fiction (`+1 555-01XX`).
pub(crate) fn phone(seed: u64) -> String {
    format!("+1 555-01{:02}", seed % 100)
}

/// A labelled list on a line of its own: `Scenarios: flood, power_outage, earthquake`.
static LABELLED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?m)^\s*([A-Za-z][A-Za-z ]{0,30}?)\s*:\s*([^,\n]{1,60}(?:,[^,\n]{1,60}){1,19})\s*$",
    )
    .unwrap_or_else(|e| unreachable!("regex: {e}"))
});

/// What the prompt quotes: items (each `id` with the `name` on the same line, if any) and
/// labelled lists (`Scenarios: flood, power_outage`), which a table column of that name takes
/// its values from.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Catalog {
    pub entries: Vec<(String, Option<String>)>,
    pub lists: Vec<(String, Vec<String>)>,
}

impl Catalog {
    /// The values of the labelled list named like `column` (`Scenario` ↔ `Scenarios:`).
    pub fn list_for(&self, column: &str) -> Option<&[String]> {
        let column = column.trim().to_lowercase();
        self.lists
            .iter()
            .find(|(label, _)| *label == column || *label == format!("{column}s"))
            .map(|(_, values)| values.as_slice())
    }

    pub fn from_prompt(text: &str) -> Catalog {
        let lists = LABELLED
            .captures_iter(text)
            .filter_map(|c| {
                let label = c.get(1)?.as_str().trim().to_lowercase();
                let values: Vec<String> = c
                    .get(2)?
                    .as_str()
                    .split(',')
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
                    .collect();
                (values.len() >= 2).then_some((label, values))
            })
            .collect();
        let mut entries: Vec<(String, Option<String>)> = Vec::new();
        for c in ENTRY.captures_iter(text) {
            let Some(id) = c.get(1).map(|m| m.as_str().trim().to_owned()) else {
                continue;
            };
            if id.is_empty() || entries.iter().any(|(known, _)| *known == id) {
                continue;
            }
            entries.push((id, c.get(2).map(|m| m.as_str().trim().to_owned())));
        }
        Catalog { entries, lists }
    }

    /// `n` ids (distinct while the catalog has enough), starting at a seeded position.
    pub fn pick(&self, n: usize, seed: u64) -> Vec<String> {
        if self.entries.is_empty() {
            return Vec::new();
        }
        let len = self.entries.len();
        let start = usize::try_from(seed % len as u64).unwrap_or_default();
        (0..n)
            .map(|i| self.entries[(start + i) % len].0.clone())
            .collect()
    }

    pub fn name_of(&self, id: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(known, _)| known == id)
            .and_then(|(_, name)| name.as_deref())
    }
}

fn singular(title: &str) -> String {
    let word = title.split_whitespace().last().unwrap_or("Place");
    let word = word.strip_suffix('s').unwrap_or(word);
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// A place-like name for a row of a section.
pub(crate) fn name(title: &str, row: usize, seed: u64) -> String {
    let r = mix(seed, 100 + row as u64);
    let prefix = PREFIXES[(r % PREFIXES.len() as u64) as usize];
    let noun = NOUNS[((r >> 8) % NOUNS.len() as u64) as usize];
    format!("{prefix} {} {noun}", singular(title))
}

pub(crate) fn address(row: usize, seed: u64) -> String {
    let r = mix(seed, 200 + row as u64);
    let street = STREETS[((r >> 8) % STREETS.len() as u64) as usize];
    format!("{} {street} Street", 1 + r % 240)
}

/// One sentence about a row of a section.
pub(crate) fn sentence(column: &str, title: &str, row: usize) -> String {
    let title = title.to_lowercase();
    match row % 3 {
        0 => format!("{column} for the {title}: the first choice, closest and always reachable."),
        1 => format!("{column} for the {title}: a backup when the first choice is unavailable."),
        _ => format!("{column} for the {title}: covers what the others do not."),
    }
}

pub(crate) fn paragraph(title: &str, subject: &str, index: usize) -> String {
    if index == 0 {
        format!(
            "{title}, in answer to: {subject}. This answer is written by llmflow-emulator to the structure the prompt asked for, so that the workflow can be run without a model."
        )
    } else {
        format!(
            "More on {}: each part below follows from the request, in the order it will be needed.",
            title.to_lowercase()
        )
    }
}

pub(crate) fn list_item(title: &str, index: usize) -> String {
    let verb = VERBS[index % VERBS.len()];
    let object = OBJECTS[(index / VERBS.len() + index) % OBJECTS.len()];
    format!("{verb} {object} {} ({})", title.to_lowercase(), index + 1)
}

/// The value of a table cell, by the column's rule and name; `id` is the catalog id of the row,
/// when the prompt quotes a catalog.
pub(crate) fn cell(
    column: &Column,
    row: usize,
    seed: u64,
    title: &str,
    id: Option<&str>,
    catalog: &Catalog,
) -> String {
    match &column.rule {
        Rule::OneOf(values) => return values[row % values.len()].clone(),
        Rule::Range(lo, hi) => {
            let span = u64::try_from(hi - lo + 1).unwrap_or(1).max(1);
            return (lo + i64::try_from(row as u64 % span).unwrap_or(0)).to_string();
        }
        Rule::Free => {}
    }
    if let Some(values) = catalog.list_for(&column.name) {
        return values[row % values.len()].clone();
    }
    let lower = column.name.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let has = |w: &str| words.contains(&w);
    let r = mix(seed, 300 + row as u64);
    if has("phone") || has("telephone") || has("tel") || (has("number") && !has("id")) {
        phone(r)
    } else if has("id") {
        id.map_or_else(
            || format!("{}-{}", singular(title).to_lowercase(), row + 1),
            str::to_owned,
        )
    } else if has("name") {
        id.and_then(|id| catalog.name_of(id))
            .map_or_else(|| name(title, row, seed), str::to_owned)
    } else if has("address") || has("location") {
        address(row, seed)
    } else if has("priority") || has("rank") {
        (row % 5 + 1).to_string()
    } else if has("estimate") || has("days") || has("count") || has("hours") {
        (2 + r % 9).to_string()
    } else if words.len() <= 1
        && [
            "phase", "step", "layer", "persona", "scenario", "event", "command",
        ]
        .iter()
        .any(|w| has(w))
    {
        format!("{} {}", column.name, row + 1)
    } else {
        sentence(&column.name, title, row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_entries_are_read_from_prompt_lines() {
        let catalog = Catalog::from_prompt(
            "Bundles:\n- id: \"water-72h\", name: \"Water 72h\": drinking water\n\
             - {\"id\": \"kit-first-aid\", \"name\": \"First aid kit\"}\n- id: \"solo\"\n",
        );
        assert_eq!(
            catalog.entries,
            [
                ("water-72h".to_owned(), Some("Water 72h".to_owned())),
                ("kit-first-aid".to_owned(), Some("First aid kit".to_owned())),
                ("solo".to_owned(), None)
            ]
        );
        let picked = catalog.pick(3, 1);
        assert_eq!(picked.len(), 3);
        let mut distinct = picked.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 3, "{picked:?}");
        assert_eq!(catalog.name_of("water-72h"), Some("Water 72h"));
        assert!(Catalog::default().pick(2, 0).is_empty());
        let lists = Catalog::from_prompt(
            "Location: Lyon, France\nScenarios: flood, power_outage\nNote: one, two",
        );
        assert_eq!(
            lists.list_for("Scenario"),
            Some(&["flood".to_owned(), "power_outage".to_owned()][..])
        );
        assert!(lists.list_for("Name").is_none());
    }

    #[test]
    fn cells_follow_column_names() {
        let column = |name: &str| Column {
            name: name.into(),
            rule: Rule::Free,
        };
        let catalog = Catalog::from_prompt("- id: \"b1\", name: \"Bundle one\"");
        let phone = cell(&column("Phone"), 0, 1, "Medical", None, &catalog);
        assert!(
            phone.starts_with("+1 555-01") && phone.len() == 11,
            "{phone}"
        );
        assert_eq!(
            cell(&column("Bundle ID"), 0, 1, "Bundles", Some("b1"), &catalog),
            "b1"
        );
        assert_eq!(
            cell(&column("Name"), 0, 1, "Bundles", Some("b1"), &catalog),
            "Bundle one"
        );
        assert!(cell(&column("Name"), 1, 1, "Medical", None, &catalog).contains("Medical"));
        assert!(cell(&column("Address"), 0, 1, "x", None, &catalog).ends_with(" Street"));
        assert_eq!(cell(&column("Priority"), 2, 1, "x", None, &catalog), "3");
    }
}
