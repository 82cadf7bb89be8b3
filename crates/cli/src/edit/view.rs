//! What the editor shows above each prompt: the workflow's steps as a tree, each step's
//! problems under it, and the problems that belong to no step at the end.

use llmflow_core::workflow::Problem;

use super::doc::{self, Child, ListPath, Node, StepAddr};
use super::fields::{clip, on_error_label, short};

/// A step's one-line summary: its kind and what matters most for that kind.
pub fn summary(step: &Node) -> String {
    let kind = step.get_str("type").unwrap_or("(no type)");
    let mut parts = vec![kind.to_owned()];
    match kind {
        "llm" => {
            parts.push(step.get_str("provider").unwrap_or("openrouter").to_owned());
            parts.push(step.get_str("model").unwrap_or("(no model)").to_owned());
            if let Some(file) = step.get_str("prompt_file") {
                parts.push(format!("prompt {file}"));
            }
        }
        "transform" => {
            parts.push(
                step.get_str("operation")
                    .unwrap_or("(no operation)")
                    .to_owned(),
            );
            if let Some(input) = step.get("input") {
                parts.push(format!("input {}", short(input)));
            }
        }
        "conditional" => {
            parts.push(clip(
                step.get_str("condition").unwrap_or("(no condition)"),
                48,
            ));
        }
        "parallel" => {
            let fail_fast = !matches!(step.get("fail_fast"), Some(Node::Bool(false)));
            parts.push(
                if fail_fast {
                    "fail fast"
                } else {
                    "all branches finish"
                }
                .to_owned(),
            );
        }
        "external_api" => match step.get_str("service") {
            Some(service) => parts.push(service.to_owned()),
            None => {
                parts.push(step.get_str("method").unwrap_or("GET").to_owned());
                parts.push(clip(step.get_str("url").unwrap_or("(no url)"), 48));
            }
        },
        _ => {}
    }
    if step.get("on_error").is_some() {
        parts.push(format!("on_error {}", on_error_label(step.get("on_error"))));
    }
    parts.join(" · ")
}

/// The problems attached to the deepest step whose path they fall under, and the rest.
pub struct Placed<'a> {
    pub by_step: Vec<(String, Vec<&'a Problem>)>,
    pub workflow: Vec<&'a Problem>,
}

fn under(field: &str, path: &str) -> bool {
    field == path
        || field
            .strip_prefix(path)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// Places each problem under the deepest step its path names.
pub fn place<'a>(root: &Node, problems: &'a [Problem]) -> Placed<'a> {
    let paths: Vec<String> = doc::walk(root)
        .iter()
        .map(|e| doc::step_json_path(&e.addr))
        .collect();
    let mut by_step: Vec<(String, Vec<&Problem>)> =
        paths.iter().map(|p| (p.clone(), Vec::new())).collect();
    let mut workflow = Vec::new();
    for problem in problems {
        let best = paths
            .iter()
            .enumerate()
            .filter(|(_, p)| under(&problem.field, p))
            .max_by_key(|(_, p)| p.len());
        match best {
            Some((i, _)) => by_step[i].1.push(problem),
            None => workflow.push(problem),
        }
    }
    Placed { by_step, workflow }
}

/// The problems of one step, their fields relative to it (`model: not in the pricing table`).
pub fn step_problems(placed: &Placed<'_>, addr: &StepAddr) -> Vec<String> {
    let path = doc::step_json_path(addr);
    placed
        .by_step
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, problems)| {
            problems
                .iter()
                .map(|problem| {
                    let field = problem
                        .field
                        .strip_prefix(&path)
                        .map(|f| f.trim_start_matches('.'))
                        .unwrap_or(&problem.field);
                    if field.is_empty() {
                        problem.message.clone()
                    } else {
                        format!("{field}: {}", problem.message)
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The tree with problems inline, as lines.
pub fn tree(root: &Node, problems: &[Problem], focus: Option<&StepAddr>) -> Vec<String> {
    let placed = place(root, problems);
    let mut lines = Vec::new();
    let width = doc::walk(root)
        .iter()
        .map(|e| e.depth * 4 + e.step.get_str("id").map_or(4, |id| id.chars().count()))
        .max()
        .unwrap_or(0)
        .min(36);
    match doc::list(root, &[]) {
        Some(steps) if !steps.is_empty() => {
            let cx = Lines {
                root,
                width,
                placed: &placed,
                focus,
            };
            cx.list(&Vec::new(), "", &mut lines);
        }
        _ => lines.push("  (no steps yet: choose “Add a step”)".to_owned()),
    }
    lines
}

/// What drawing the tree needs at every level.
struct Lines<'a> {
    root: &'a Node,
    width: usize,
    placed: &'a Placed<'a>,
    focus: Option<&'a StepAddr>,
}

impl Lines<'_> {
    fn list(&self, path: &ListPath, indent: &str, lines: &mut Vec<String>) {
        // An absent `then`/`else` is the empty list it stands for.
        let steps = doc::list(self.root, path).map_or(&[][..], Vec::as_slice);
        if steps.is_empty() {
            lines.push(format!("  {indent}(empty)"));
        }
        for (index, step) in steps.iter().enumerate() {
            let addr = StepAddr {
                list: path.clone(),
                index,
            };
            let id = step.get_str("id").unwrap_or("(no id)");
            let problems = step_problems(self.placed, &addr);
            let mark = if self.focus == Some(&addr) {
                "▶"
            } else if problems.is_empty() {
                " "
            } else {
                "✗"
            };
            let pad = self.width.saturating_sub(indent.chars().count());
            lines.push(format!("{mark} {indent}{id:<pad$}  {}", summary(step)));
            for problem in problems {
                lines.push(format!("  {indent}    ✗ {problem}"));
            }
            let children = doc::children(step);
            let count = children.len();
            for (n, child) in children.into_iter().enumerate() {
                let last = n + 1 == count;
                let label = match &child {
                    Child::Then => "then".to_owned(),
                    Child::Else => "else".to_owned(),
                    Child::Branch(name) => format!("branch {name}"),
                };
                lines.push(format!(
                    "  {indent}{}─ {label}",
                    if last { "└" } else { "├" }
                ));
                let mut inner = path.clone();
                inner.push((index, child));
                let nested = format!("{indent}{}   ", if last { " " } else { "│" });
                self.list(&inner, &nested, lines);
            }
        }
    }
}

/// A step as one line of a pick list: indented by depth, with its summary.
pub fn pick_label(entry: &doc::Entry<'_>) -> String {
    let id = entry.step.get_str("id").unwrap_or("(no id)");
    format!(
        "{}{id}  ({})",
        "   ".repeat(entry.depth),
        clip(&summary(entry.step), 60)
    )
}

/// The name of a list for the position picker (`top level`, `route → then`).
pub fn list_name(root: &Node, path: &ListPath) -> String {
    let Some((index, child)) = path.last() else {
        return "top level".to_owned();
    };
    let parent = &path[..path.len() - 1];
    let id = doc::list(root, parent)
        .and_then(|steps| steps.get(*index))
        .and_then(|s| s.get_str("id"))
        .unwrap_or("?");
    match child {
        Child::Then => format!("{id} → then"),
        Child::Else => format!("{id} → else"),
        Child::Branch(name) => format!("{id} → branch {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_sit_under_the_deepest_step_they_name() {
        let root = Node::parse(
            r#"{"name": "w", "steps": [
                {"id": "c", "type": "conditional", "condition": "true",
                 "then": [{"id": "t", "type": "transform"}]},
                {"id": "d", "type": "transform"}
            ]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let problems = vec![
            Problem::new("steps[0].then[0].operation", "missing"),
            Problem::new("steps[0].condition", "bad"),
            Problem::new("steps[1]", "whole step"),
            Problem::new("output", "unknown step"),
        ];
        let lines = tree(&root, &problems, None).join("\n");
        let expected = [
            "✗ c      conditional · true",
            "      ✗ condition: bad",
            "  ├─ then",
            "✗ │   t  transform · (no operation)",
            "  │       ✗ operation: missing",
            "  └─ else",
            "      (empty)",
            "✗ d      transform · (no operation)",
            "      ✗ whole step",
        ]
        .join("\n");
        assert_eq!(lines, expected);
        let placed = place(&root, &problems);
        assert_eq!(placed.workflow.len(), 1);
        assert_eq!(placed.workflow[0].field, "output");
    }
}
