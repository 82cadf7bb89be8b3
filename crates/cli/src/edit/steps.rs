//! The editor's step actions: add, edit (field by field, `on_error` included), move and
//! remove. Each ends by validating the whole definition again.

use super::ask::{self, Asked, Stop};
use super::doc::{self, ListPath, Node, StepAddr};
use super::fields::{self, Field, References, KINDS, OPERATIONS};
use super::view;
use super::Editor;

/// Whether `id` can name a step: an identifier, so that `steps.<id>.output` works.
fn id_problem(id: &str, taken: &[String]) -> Option<String> {
    let mut chars = id.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') || id.len() > 64 {
        return Some("letters, digits and _ only, not starting with a digit (at most 64)".into());
    }
    taken
        .iter()
        .any(|t| t == id)
        .then(|| format!("a step `{id}` exists already"))
}

impl Editor {
    /// Picks a step from the tree.
    fn pick_step(&mut self, message: &str) -> Asked<StepAddr> {
        let entries = doc::walk(&self.doc);
        if entries.is_empty() {
            self.status = Some("there are no steps yet".to_owned());
            return Err(Stop::Back);
        }
        let labels: Vec<String> = entries.iter().map(view::pick_label).collect();
        let picked = ask::choose(message, &labels, 0)?;
        entries
            .get(picked)
            .map(|e| e.addr.clone())
            .ok_or(Stop::Back)
    }

    /// Picks a place for a step: a list and a position in it. A step being moved cannot go
    /// into itself, nor to where it already is.
    fn pick_place(&mut self, message: &str, moving: Option<&StepAddr>) -> Asked<(ListPath, usize)> {
        let mut labels = Vec::new();
        let mut places = Vec::new();
        for path in doc::lists(&self.doc) {
            if moving.is_some_and(|m| doc::inside(&path, m)) {
                continue;
            }
            let name = view::list_name(&self.doc, &path);
            let steps = doc::list(&self.doc, &path).cloned().unwrap_or_default();
            let here = |index: usize| {
                moving.is_some_and(|m| m.list == path && (index == m.index || index == m.index + 1))
            };
            if steps.is_empty() {
                labels.push(format!("{name}: here (empty)"));
                places.push((path.clone(), 0));
                continue;
            }
            if !here(0) {
                labels.push(format!("{name}: first"));
                places.push((path.clone(), 0));
            }
            for (i, step) in steps.iter().enumerate() {
                if here(i + 1) {
                    continue;
                }
                let id = step.get_str("id").unwrap_or("(no id)");
                labels.push(format!("{name}: after `{id}`"));
                places.push((path.clone(), i + 1));
            }
        }
        // A new step goes at the end by default; a moved one starts one place up.
        let start = places
            .iter()
            .position(|(p, i)| moving.is_some_and(|m| *p == m.list && i + 1 >= m.index))
            .or_else(|| places.iter().rposition(|(p, _)| p.is_empty()))
            .unwrap_or(0);
        let picked = ask::choose(message, &labels, start)?;
        places.get(picked).cloned().ok_or(Stop::Back)
    }

    /// What a step at `addr` can reference: the steps before it, and the input's fields.
    fn references(&self, addr: Option<&StepAddr>) -> References {
        let entries = doc::walk(&self.doc);
        let end = addr
            .and_then(|a| entries.iter().position(|e| e.addr == *a))
            .unwrap_or(entries.len());
        let steps = entries[..end]
            .iter()
            .filter_map(|e| e.step.get_str("id").map(str::to_owned))
            .collect();
        let input_fields = self
            .doc
            .get("input_schema")
            .and_then(|s| s.get("properties"))
            .and_then(Node::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        References {
            steps,
            input_fields,
        }
    }

    /// Asks for one field of the step at `addr` and applies the answer.
    fn ask_field(&mut self, addr: &StepAddr, field: &Field) -> Asked<()> {
        let refs = self.references(Some(addr));
        let current = doc::step(&self.doc, addr)
            .and_then(|s| s.get(field.key))
            .cloned();
        let value = fields::ask_value(field, current.as_ref(), &refs)?;
        let Some(step) = doc::step_mut(&mut self.doc, addr) else {
            return Err(Stop::Back);
        };
        match value {
            Some(value) => step.set(field.key, value),
            None => {
                step.remove(field.key);
            }
        }
        let id = step.get_str("id").unwrap_or("?").to_owned();
        self.changed(format!("changed `{id}`.{}", field.key));
        Ok(())
    }

    /// Asks for the fields a new step must have, in order.
    fn ask_required(&mut self, addr: &StepAddr) -> Asked<()> {
        loop {
            let Some(step) = doc::step(&self.doc, addr) else {
                return Ok(());
            };
            let missing = fields::step_fields(step, &self.choices)
                .into_iter()
                .find(|f| f.required && step.get(f.key).is_none());
            let Some(field) = missing else {
                return Ok(());
            };
            self.ask_field(addr, &field)?;
            // An answer that left the field unset ends the questions; validation says the rest.
            if doc::step(&self.doc, addr).is_none_or(|s| s.get(field.key).is_none()) {
                return Ok(());
            }
        }
    }

    pub(super) fn add_step(&mut self) -> Asked<()> {
        let (list, index) = self.pick_place("Where does the new step go?", None)?;
        let labels: Vec<String> = KINDS
            .iter()
            .map(|(kind, what)| format!("{kind} — {what}"))
            .collect();
        let kind = KINDS[ask::choose("Kind of step:", &labels, 0)?].0;
        let taken = doc::step_ids(&self.doc);
        let id = ask::text(
            "id:",
            "",
            "a name for the step, used as steps.<id>.output",
            move |input| id_problem(input, &taken),
        )?;
        let mut step = Node::Object(Default::default());
        step.set("id", Node::str(id.as_str()));
        step.set("type", Node::str(kind));
        match kind {
            "transform" => {
                let labels: Vec<String> = OPERATIONS
                    .iter()
                    .map(|(op, what)| format!("{op} — {what}"))
                    .collect();
                let op = OPERATIONS[ask::choose("operation:", &labels, 0)?].0;
                step.set("operation", Node::str(op));
            }
            "conditional" => {
                step.set("condition", Node::str(""));
                step.set("then", Node::Array(Vec::new()));
                step.set("else", Node::Array(Vec::new()));
            }
            "parallel" => {
                let names = ask::text(
                    "branches:",
                    "a, b",
                    "branch names, separated by commas",
                    |input| {
                        input
                            .split(',')
                            .any(|n| id_problem(n.trim(), &[]).is_some())
                            .then(|| "names are identifiers, separated by commas".to_owned())
                    },
                )?;
                let mut branches = Node::Object(Default::default());
                for name in names.split(',') {
                    branches.set(name.trim(), Node::Array(Vec::new()));
                }
                step.set("branches", branches);
            }
            _ => {}
        }
        let Some(target) = doc::list_mut(&mut self.doc, &list) else {
            return Err(Stop::Back);
        };
        let index = index.min(target.len());
        target.insert(index, step);
        let addr = StepAddr { list, index };
        // A step half asked for stays in the tree, its gaps shown as problems.
        let asked = self.ask_new_fields(&addr, kind);
        self.tidy_new(&addr);
        self.changed(format!("added `{id}`"));
        asked
    }

    /// Orders a new step's keys as its kind lists them (`id`, `type`, its fields, `on_error`,
    /// nested steps last), whatever order they were asked in.
    fn tidy_new(&mut self, addr: &StepAddr) {
        let Some(step) = doc::step(&self.doc, addr) else {
            return;
        };
        let mut order = vec!["id", "type"];
        order.extend(
            fields::step_fields(step, &self.choices)
                .iter()
                .map(|f| f.key),
        );
        order.extend(["on_error", "condition", "then", "else", "branches"]);
        let rank = |key: &str| order.iter().position(|k| *k == key).unwrap_or(order.len());
        let ranks: Vec<(String, usize)> = step
            .as_object()
            .map(|m| m.keys().map(|k| (k.clone(), rank(k))).collect())
            .unwrap_or_default();
        if let Some(map) = doc::step_mut(&mut self.doc, addr).and_then(Node::as_object_mut) {
            map.sort_by(|a, _, b, _| {
                let find = |key: &String| ranks.iter().find(|(k, _)| k == key).map(|(_, r)| *r);
                find(a).cmp(&find(b))
            });
        }
    }

    /// The fields a new step of `kind` is asked for, in order.
    fn ask_new_fields(&mut self, addr: &StepAddr, kind: &str) -> Asked<()> {
        let keys: &[&str] = match kind {
            "llm" => &["provider", "model"],
            "transform" => &[],
            "conditional" => &["condition"],
            "external_api" => &["service"],
            _ => &[],
        };
        for key in keys {
            self.ask_key(addr, key)?;
        }
        self.ask_required(addr)?;
        match kind {
            "llm" => self.ask_prompt(addr),
            "transform" => self.ask_key(addr, "input"),
            "external_api" => {
                let places = doc::step(&self.doc, addr).is_some_and(|s| s.get("service").is_some());
                let keys: &[&str] = if places {
                    &["query"]
                } else {
                    &["method", "url"]
                };
                for key in keys {
                    self.ask_key(addr, key)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Asks for the field `key` of the step at `addr`, as its kind describes it.
    fn ask_key(&mut self, addr: &StepAddr, key: &str) -> Asked<()> {
        let field = doc::step(&self.doc, addr).and_then(|step| {
            fields::step_fields(step, &self.choices)
                .into_iter()
                .find(|f| f.key == key)
        });
        match field {
            Some(field) => self.ask_field(addr, &field),
            None => Ok(()),
        }
    }

    /// An llm step's prompt: typed inline, or one of the prompt files.
    fn ask_prompt(&mut self, addr: &StepAddr) -> Asked<()> {
        let mut labels = vec!["✎ an inline prompt".to_owned()];
        labels.extend(
            self.choices
                .prompt_files
                .iter()
                .map(|f| format!("the prompt file {f}")),
        );
        let picked = ask::choose("prompt:", &labels, 0)?;
        match self.choices.prompt_files.get(picked.wrapping_sub(1)) {
            Some(file) if picked > 0 => {
                let file = file.clone();
                if let Some(step) = doc::step_mut(&mut self.doc, addr) {
                    step.set("prompt_file", Node::str(file));
                }
                Ok(())
            }
            _ => self.ask_key(addr, "prompt"),
        }
    }

    pub(super) fn edit_step(&mut self) -> Asked<()> {
        let addr = self.pick_step("Which step?")?;
        self.focus = Some(addr.clone());
        let result = self.edit_fields(&addr);
        self.focus = None;
        result
    }

    /// The field menu of one step, until the author goes back.
    fn edit_fields(&mut self, addr: &StepAddr) -> Asked<()> {
        let addr = addr.clone();
        loop {
            self.show();
            let Some(step) = doc::step(&self.doc, &addr).cloned() else {
                return Ok(());
            };
            let id = step.get_str("id").unwrap_or("(no id)").to_owned();
            let problems = view::step_problems(&view::place(&self.doc, &self.problems), &addr);
            let all = fields::step_fields(&step, &self.choices);
            let mut labels = vec![format!("id: {id}")];
            let mut actions = vec![Action::Id];
            for field in all.iter().filter(|f| step.get(f.key).is_some()) {
                let value = step.get(field.key).map(fields::short).unwrap_or_default();
                labels.push(format!("{}: {value}", field.key));
                actions.push(Action::Field(field.clone()));
            }
            labels.push(format!(
                "on_error: {}",
                fields::on_error_label(step.get("on_error"))
            ));
            actions.push(Action::OnError);
            for field in all.iter().filter(|f| step.get(f.key).is_none()) {
                labels.push(format!("+ {} (not set)", field.key));
                actions.push(Action::Field(field.clone()));
            }
            if step.get_str("type") == Some("parallel") {
                labels.push("+ add a branch".to_owned());
                actions.push(Action::Branch);
                labels.push("− remove a branch".to_owned());
                actions.push(Action::RemoveBranch);
            }
            labels.push("← back".to_owned());
            actions.push(Action::Back);
            let message = match problems.len() {
                0 => format!("Step `{id}` — which field?"),
                1 => format!("Step `{id}` (its problem is shown above) — which field?"),
                n => format!("Step `{id}` (its {n} problems are shown above) — which field?"),
            };
            let picked = match ask::choose(&message, &labels, 0) {
                Err(Stop::Back) => return Ok(()),
                other => other?,
            };
            let result = match actions.get(picked).cloned().unwrap_or(Action::Back) {
                Action::Back => return Ok(()),
                Action::Id => self.rename(&addr, &id),
                Action::OnError => self.set_on_error(&addr),
                Action::Branch => self.add_branch(&addr),
                Action::RemoveBranch => self.remove_branch(&addr),
                Action::Field(field) if field.key == "operation" => {
                    self.change_operation(&addr, &field)
                }
                Action::Field(field) => self.ask_field(&addr, &field),
            };
            match result {
                Ok(()) | Err(Stop::Back) => {}
                Err(stop) => return Err(stop),
            }
        }
    }

    fn rename(&mut self, addr: &StepAddr, id: &str) -> Asked<()> {
        let taken: Vec<String> = doc::step_ids(&self.doc)
            .into_iter()
            .filter(|t| t != id)
            .collect();
        let new = ask::text("id:", id, "Enter to keep, Esc to go back", move |input| {
            id_problem(input, &taken)
        })?;
        if new == id {
            return Ok(());
        }
        if let Some(step) = doc::step_mut(&mut self.doc, addr) {
            step.set("id", Node::str(new.as_str()));
        }
        let found = doc::rename_references(&mut self.doc.clone(), id, &new);
        let mut note = String::new();
        if found > 0 {
            let question =
                format!("Also change the {found} reference(s) to `steps.{id}` into `steps.{new}`?");
            if ask::confirm(&question, true)? {
                doc::rename_references(&mut self.doc, id, &new);
                note = format!(" and {found} reference(s) to it");
            } else {
                note = format!("; {found} reference(s) still name `{id}`");
            }
        }
        self.changed(format!("renamed `{id}` to `{new}`{note}"));
        Ok(())
    }

    fn set_on_error(&mut self, addr: &StepAddr) -> Asked<()> {
        let current = doc::step(&self.doc, addr)
            .and_then(|s| s.get("on_error"))
            .cloned();
        let value = fields::ask_on_error(current.as_ref())?;
        if let Some(step) = doc::step_mut(&mut self.doc, addr) {
            match value {
                Some(value) => step.set("on_error", value),
                None => {
                    step.remove("on_error");
                }
            }
        }
        let id = doc::step(&self.doc, addr)
            .and_then(|s| s.get_str("id"))
            .unwrap_or("?")
            .to_owned();
        self.changed(format!("changed `{id}`.on_error"));
        Ok(())
    }

    /// A new operation: the old one's own fields go, the new one's required fields are asked.
    fn change_operation(&mut self, addr: &StepAddr, field: &Field) -> Asked<()> {
        let old = doc::step(&self.doc, addr)
            .and_then(|s| s.get_str("operation"))
            .unwrap_or("")
            .to_owned();
        self.ask_field(addr, field)?;
        let new = doc::step(&self.doc, addr)
            .and_then(|s| s.get_str("operation"))
            .unwrap_or("")
            .to_owned();
        if new != old {
            let keep: Vec<&str> = fields::operation_fields(&new)
                .iter()
                .map(|f| f.key)
                .collect();
            if let Some(step) = doc::step_mut(&mut self.doc, addr) {
                for f in fields::operation_fields(&old) {
                    if !keep.contains(&f.key) {
                        step.remove(f.key);
                    }
                }
            }
            self.ask_required(addr)?;
            self.changed(format!("operation is now {new}"));
        }
        Ok(())
    }

    fn add_branch(&mut self, addr: &StepAddr) -> Asked<()> {
        let taken: Vec<String> = doc::step(&self.doc, addr)
            .and_then(|s| s.get("branches"))
            .and_then(Node::as_object)
            .map(|b| b.keys().cloned().collect())
            .unwrap_or_default();
        let name = ask::text("branch name:", "", "an identifier", move |input| {
            id_problem(input, &taken).map(|m| m.replace("a step", "a branch"))
        })?;
        if let Some(step) = doc::step_mut(&mut self.doc, addr) {
            let mut branches = step
                .get("branches")
                .cloned()
                .unwrap_or(Node::Object(Default::default()));
            branches.set(&name, Node::Array(Vec::new()));
            step.set("branches", branches);
        }
        self.changed(format!("added branch {name}"));
        Ok(())
    }

    fn remove_branch(&mut self, addr: &StepAddr) -> Asked<()> {
        let branches: Vec<(String, usize)> = doc::step(&self.doc, addr)
            .and_then(|s| s.get("branches"))
            .and_then(Node::as_object)
            .map(|b| {
                b.iter()
                    .map(|(name, steps)| {
                        let count = match steps {
                            Node::Array(items) => items.len(),
                            _ => 0,
                        };
                        (name.clone(), count)
                    })
                    .collect()
            })
            .unwrap_or_default();
        if branches.is_empty() {
            self.status = Some("this step has no branches".to_owned());
            return Ok(());
        }
        let labels: Vec<String> = branches
            .iter()
            .map(|(name, count)| format!("{name} ({count} step(s))"))
            .collect();
        let (name, count) = branches[ask::choose("Remove which branch?", &labels, 0)?].clone();
        if count > 0 {
            let question = format!("Remove branch {name} and its {count} step(s)?");
            if !ask::confirm(&question, false)? {
                return Ok(());
            }
        }
        if let Some(map) = doc::step_mut(&mut self.doc, addr)
            .and_then(|s| s.as_object_mut())
            .and_then(|s| s.get_mut("branches"))
            .and_then(Node::as_object_mut)
        {
            map.shift_remove(&name);
        }
        self.changed(format!("removed branch {name}"));
        Ok(())
    }

    pub(super) fn move_step(&mut self) -> Asked<()> {
        let from = self.pick_step("Move which step?")?;
        let id = doc::step(&self.doc, &from)
            .and_then(|s| s.get_str("id"))
            .unwrap_or("?")
            .to_owned();
        let (list, index) = self.pick_place(&format!("Move `{id}` to:"), Some(&from))?;
        match doc::move_step(&mut self.doc, &from, &list, index) {
            Some(_) => self.changed(format!("moved `{id}`")),
            None => self.status = Some(format!("`{id}` cannot move there")),
        }
        Ok(())
    }

    pub(super) fn remove_step(&mut self) -> Asked<()> {
        let addr = self.pick_step("Remove which step?")?;
        let Some(step) = doc::step(&self.doc, &addr) else {
            return Err(Stop::Back);
        };
        let id = step.get_str("id").unwrap_or("?").to_owned();
        let nested = doc::walk(&self.doc)
            .iter()
            .filter(|e| doc::inside(&e.addr.list, &addr))
            .count();
        let question = match nested {
            0 => format!("Remove `{id}`?"),
            n => format!("Remove `{id}` and the {n} step(s) inside it?"),
        };
        if !ask::confirm(&question, false)? {
            return Ok(());
        }
        if let Some(list) = doc::list_mut(&mut self.doc, &addr.list) {
            if addr.index < list.len() {
                list.remove(addr.index);
            }
        }
        self.changed(format!("removed `{id}`"));
        Ok(())
    }
}

/// What a line of the step menu does.
#[derive(Clone)]
enum Action {
    Id,
    Field(Field),
    OnError,
    Branch,
    RemoveBranch,
    Back,
}
