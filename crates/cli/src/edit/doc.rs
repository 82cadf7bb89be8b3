//! The definition being edited: JSON that keeps its keys in the order the author wrote them,
//! and the addresses of its steps (top level, a conditional's `then`/`else`, a parallel step's
//! branches).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A JSON value whose objects keep their key order (the workspace's `serde_json::Value` sorts
/// keys, which is what definition hashes rely on; an author's file should keep its own order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Node {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Node>),
    Object(IndexMap<String, Node>),
}

impl Node {
    /// Parses JSON text, keeping key order.
    pub fn parse(text: &str) -> Result<Node, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The same value as a `serde_json::Value` (for validation).
    pub fn to_value(&self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::String(s) => Value::String(s.clone()),
            Node::Array(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Node::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (k.clone(), v.to_value())).collect())
            }
        }
    }

    /// The canonical text of a saved file: two-space indentation, keys in their kept order,
    /// a final newline.
    pub fn to_pretty(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_else(|e| {
            unreachable!("a JSON tree of strings, numbers and maps always serialises: {e}")
        });
        text.push('\n');
        text
    }

    /// One-line JSON text (what a prompt shows and takes for JSON-valued fields).
    pub fn to_compact(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn str(s: impl Into<String>) -> Node {
        Node::String(s.into())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&IndexMap<String, Node>> {
        match self {
            Node::Object(map) => Some(map),
            _ => None,
        }
    }

    pub fn as_object_mut(&mut self) -> Option<&mut IndexMap<String, Node>> {
        match self {
            Node::Object(map) => Some(map),
            _ => None,
        }
    }

    /// A field of an object.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_object().and_then(|map| map.get(key))
    }

    /// A string field of an object.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Node::as_str)
    }

    /// Sets a field, keeping its place if it exists and adding it at the end otherwise.
    pub fn set(&mut self, key: &str, value: Node) {
        if let Some(map) = self.as_object_mut() {
            map.insert(key.to_owned(), value);
        }
    }

    /// Removes a field, keeping the order of the others.
    pub fn remove(&mut self, key: &str) -> Option<Node> {
        self.as_object_mut().and_then(|map| map.shift_remove(key))
    }
}

impl From<&Value> for Node {
    fn from(value: &Value) -> Node {
        match value {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(*b),
            Value::Number(n) => Node::Number(n.clone()),
            Value::String(s) => Node::String(s.clone()),
            Value::Array(items) => Node::Array(items.iter().map(Node::from).collect()),
            Value::Object(map) => Node::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Node::from(v)))
                    .collect(),
            ),
        }
    }
}

/// Which list of steps inside a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Child {
    Then,
    Else,
    Branch(String),
}

impl Child {
    /// The key path of the list inside its step, as the validator writes it.
    pub fn path(&self) -> String {
        match self {
            Child::Then => "then".to_owned(),
            Child::Else => "else".to_owned(),
            Child::Branch(name) => format!("branches.{name}"),
        }
    }
}

/// A list of steps: the top level (`[]`), or a child list of the step at each hop.
pub type ListPath = Vec<(usize, Child)>;

/// Where a step stands: its list and its index there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepAddr {
    pub list: ListPath,
    pub index: usize,
}

/// The child lists a step holds, in display order.
pub fn children(step: &Node) -> Vec<Child> {
    match step.get_str("type") {
        Some("conditional") => vec![Child::Then, Child::Else],
        Some("parallel") => step
            .get("branches")
            .and_then(Node::as_object)
            .map(|b| b.keys().map(|k| Child::Branch(k.clone())).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn child_list<'a>(step: &'a Node, child: &Child) -> Option<&'a Vec<Node>> {
    let node = match child {
        Child::Then => step.get("then")?,
        Child::Else => step.get("else")?,
        Child::Branch(name) => step.get("branches")?.get(name)?,
    };
    match node {
        Node::Array(items) => Some(items),
        _ => None,
    }
}

fn child_list_mut<'a>(step: &'a mut Node, child: &Child) -> Option<&'a mut Vec<Node>> {
    let map = step.as_object_mut()?;
    let key = match child {
        Child::Then => "then",
        Child::Else => "else",
        Child::Branch(_) => "branches",
    };
    // A conditional without `then`/`else` gets the empty list it stands for.
    let node = map.entry(key.to_owned()).or_insert_with(|| match child {
        Child::Branch(_) => Node::Object(IndexMap::new()),
        Child::Then | Child::Else => Node::Array(Vec::new()),
    });
    let node = match child {
        Child::Branch(name) => node.as_object_mut()?.get_mut(name)?,
        Child::Then | Child::Else => node,
    };
    match node {
        Node::Array(items) => Some(items),
        _ => None,
    }
}

/// The step list at `path` (the definition's `steps` for the empty path).
pub fn list<'a>(root: &'a Node, path: &[(usize, Child)]) -> Option<&'a Vec<Node>> {
    let mut current = match root.get("steps")? {
        Node::Array(items) => items,
        _ => return None,
    };
    for (index, child) in path {
        current = child_list(current.get(*index)?, child)?;
    }
    Some(current)
}

/// The step list at `path`, to change.
pub fn list_mut<'a>(root: &'a mut Node, path: &[(usize, Child)]) -> Option<&'a mut Vec<Node>> {
    let map = root.as_object_mut()?;
    let mut current = match map
        .entry("steps".to_owned())
        .or_insert_with(|| Node::Array(Vec::new()))
    {
        Node::Array(items) => items,
        _ => return None,
    };
    for (index, child) in path {
        current = child_list_mut(current.get_mut(*index)?, child)?;
    }
    Some(current)
}

pub fn step<'a>(root: &'a Node, addr: &StepAddr) -> Option<&'a Node> {
    list(root, &addr.list)?.get(addr.index)
}

pub fn step_mut<'a>(root: &'a mut Node, addr: &StepAddr) -> Option<&'a mut Node> {
    list_mut(root, &addr.list)?.get_mut(addr.index)
}

/// The JSON path of a list, as the validator writes it (`steps[2].then`).
pub fn list_json_path(path: &[(usize, Child)]) -> String {
    let mut out = "steps".to_owned();
    for (index, child) in path {
        out.push_str(&format!("[{index}].{}", child.path()));
    }
    out
}

/// The JSON path of a step (`steps[2].then[0]`).
pub fn step_json_path(addr: &StepAddr) -> String {
    format!("{}[{}]", list_json_path(&addr.list), addr.index)
}

/// One step of the tree in display order, with its depth.
pub struct Entry<'a> {
    pub addr: StepAddr,
    pub depth: usize,
    pub step: &'a Node,
}

/// Every step, depth first in the order the workflow runs them.
pub fn walk(root: &Node) -> Vec<Entry<'_>> {
    let mut out = Vec::new();
    if let Some(steps) = list(root, &[]) {
        walk_list(steps, &Vec::new(), 0, &mut out);
    }
    out
}

fn walk_list<'a>(steps: &'a [Node], path: &ListPath, depth: usize, out: &mut Vec<Entry<'a>>) {
    for (index, step) in steps.iter().enumerate() {
        out.push(Entry {
            addr: StepAddr {
                list: path.clone(),
                index,
            },
            depth,
            step,
        });
        for child in children(step) {
            if let Some(items) = child_list(step, &child) {
                let mut inner = path.clone();
                inner.push((index, child));
                walk_list(items, &inner, depth + 1, out);
            }
        }
    }
}

/// Every list of steps (top level first, then nested ones in tree order).
pub fn lists(root: &Node) -> Vec<ListPath> {
    let mut out = vec![Vec::new()];
    for entry in walk(root) {
        for child in children(entry.step) {
            let mut path = entry.addr.list.clone();
            path.push((entry.addr.index, child));
            out.push(path);
        }
    }
    out
}

/// Whether list `path` lies inside the step at `addr` (where the step cannot move to).
pub fn inside(path: &[(usize, Child)], addr: &StepAddr) -> bool {
    path.len() > addr.list.len()
        && path[..addr.list.len()] == addr.list[..]
        && path[addr.list.len()].0 == addr.index
}

/// The ids of every step, in tree order.
pub fn step_ids(root: &Node) -> Vec<String> {
    walk(root)
        .iter()
        .filter_map(|e| e.step.get_str("id").map(str::to_owned))
        .collect()
}

/// Moves the step at `from` to position `to_index` of list `to` (an index counted before the
/// step is taken out). Returns the step's new address.
pub fn move_step(
    root: &mut Node,
    from: &StepAddr,
    to: &ListPath,
    to_index: usize,
) -> Option<StepAddr> {
    if inside(to, from) {
        return None;
    }
    let source = list_mut(root, &from.list)?;
    if from.index >= source.len() {
        return None;
    }
    let step = source.remove(from.index);
    // Taking the step out shifts later siblings, and the lists below them, one place up.
    let mut to = to.clone();
    let mut to_index = to_index;
    if to.len() > from.list.len() && to[..from.list.len()] == from.list[..] {
        let hop = &mut to[from.list.len()].0;
        if *hop > from.index {
            *hop -= 1;
        }
    } else if to == from.list && to_index > from.index {
        to_index -= 1;
    }
    let target = list_mut(root, &to)?;
    let to_index = to_index.min(target.len());
    target.insert(to_index, step);
    Some(StepAddr {
        list: to,
        index: to_index,
    })
}

/// Rewrites `steps.<old>` into `steps.<new>` in every string of the definition (templates,
/// CEL conditions, the output), only where `old` is the whole id; returns how many it changed.
pub fn rename_references(node: &mut Node, old: &str, new: &str) -> usize {
    match node {
        Node::String(text) => {
            let (renamed, count) = rename_in(text, old, new);
            if count > 0 {
                *text = renamed;
            }
            count
        }
        Node::Array(items) => items
            .iter_mut()
            .map(|n| rename_references(n, old, new))
            .sum(),
        Node::Object(map) => map
            .values_mut()
            .map(|n| rename_references(n, old, new))
            .sum(),
        Node::Null | Node::Bool(_) | Node::Number(_) => 0,
    }
}

fn rename_in(text: &str, old: &str, new: &str) -> (String, usize) {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let needle = format!("steps.{old}");
    let mut out = String::with_capacity(text.len());
    let mut count = 0;
    let mut rest = text;
    while let Some(at) = rest.find(&needle) {
        let before = if at > 0 {
            rest[..at].chars().last()
        } else {
            out.chars().last()
        };
        let after = rest[at + needle.len()..].chars().next();
        out.push_str(&rest[..at]);
        if before.is_some_and(is_ident) || after.is_some_and(is_ident) {
            out.push_str(&needle);
        } else {
            out.push_str(&format!("steps.{new}"));
            count += 1;
        }
        rest = &rest[at + needle.len()..];
    }
    out.push_str(rest);
    (out, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Node {
        Node::parse(
            r#"{"name": "w", "steps": [
                {"id": "a", "type": "transform"},
                {"id": "c", "type": "conditional", "then": [{"id": "t", "type": "transform"}],
                 "else": []},
                {"id": "z", "type": "transform"}
            ]}"#,
        )
        .unwrap_or_else(|e| panic!("test document: {e}"))
    }

    #[test]
    fn keeps_key_order() {
        let node = Node::parse(r#"{"zeta": 1, "alpha": {"y": true, "b": null}}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            node.to_compact(),
            r#"{"zeta":1,"alpha":{"y":true,"b":null}}"#
        );
    }

    /// Saving what was saved gives the same text: the format is canonical, so files only
    /// change where they were edited.
    #[test]
    fn canonical_text_is_stable() {
        for name in ["bench_pipeline", "city_guide", "dev_framework"] {
            let file = format!("{}/../../workflows/{name}.json", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
            let once = Node::parse(&text)
                .unwrap_or_else(|e| panic!("{e}"))
                .to_pretty();
            let twice = Node::parse(&once)
                .unwrap_or_else(|e| panic!("{e}"))
                .to_pretty();
            assert_eq!(once, twice, "{name}");
            // Nothing is lost or changed on the way: the same JSON value.
            let before: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
            let after: Value = serde_json::from_str(&once).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(before, after, "{name}");
        }
    }

    #[test]
    fn walks_in_tree_order_with_paths() {
        let root = doc();
        let paths: Vec<String> = walk(&root)
            .iter()
            .map(|e| step_json_path(&e.addr))
            .collect();
        assert_eq!(
            paths,
            ["steps[0]", "steps[1]", "steps[1].then[0]", "steps[2]"]
        );
    }

    #[test]
    fn moves_into_and_out_of_nested_lists() {
        let mut root = doc();
        let from = StepAddr {
            list: Vec::new(),
            index: 0,
        };
        // `a` into the `else` of `c`, which moves up to index 0 once `a` is out.
        let to = vec![(1, Child::Else)];
        let addr = move_step(&mut root, &from, &to, 0).unwrap_or_else(|| panic!("moved"));
        assert_eq!(addr.list, vec![(0, Child::Else)]);
        assert_eq!(step_ids(&root), ["c", "t", "a", "z"]);
        // And back to the end of the top level.
        let addr = move_step(&mut root, &addr, &Vec::new(), 2).unwrap_or_else(|| panic!("moved"));
        assert_eq!(addr.index, 2);
        assert_eq!(step_ids(&root), ["c", "t", "z", "a"]);
        // A step never moves into itself.
        let c = StepAddr {
            list: Vec::new(),
            index: 0,
        };
        assert!(move_step(&mut root, &c, &vec![(0, Child::Then)], 0).is_none());
    }

    #[test]
    fn renames_whole_ids_only() {
        let mut root = Node::parse(
            r#"{"steps": [{"id": "a", "input": "${steps.a.output}", "condition":
                "steps.a.output.n > 1 && steps.ab.output && mysteps.a.x"}],
               "output": {"x": "${steps.a}"}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rename_references(&mut root, "a", "b"), 3);
        assert_eq!(
            root.to_compact(),
            r#"{"steps":[{"id":"a","input":"${steps.b.output}","condition":"steps.b.output.n > 1 && steps.ab.output && mysteps.a.x"}],"output":{"x":"${steps.b}"}}"#
        );
    }
}
