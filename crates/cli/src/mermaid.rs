//! A workflow drawn as a Mermaid `flowchart`, deterministically: the same definition always
//! gives the same text. Steps run top to bottom; a conditional is a decision node with its CEL
//! condition whose `then` and `else` paths join again; a parallel step fans out to its branches
//! (in name order) and in again. Each kind has its own shape, and LLM steps name their provider
//! and model.

use std::fmt::Write;

use llmflow_core::workflow::{OnError, Step, StepKind, Workflow};

/// What each shape means, for the reader of a diagram.
pub const LEGEND: &str = "Shapes: rounded = `llm` (provider · model), parallelogram = `transform` \
(operation), subroutine = `external_api` (service), diamond = `conditional` (CEL condition), \
hexagon = `parallel` fan-out, circle = where paths join again.";

/// The Mermaid text of `workflow`'s flowchart; LLM steps without a provider use
/// `default_provider`.
pub fn flowchart(workflow: &Workflow, default_provider: &str) -> String {
    let mut chart = Chart {
        default_provider,
        lines: Vec::new(),
    };
    chart.line("flowchart TD".to_owned());
    chart.line("  wf_input([\"input\"])".to_owned());
    let exits = chart.steps(&workflow.steps, vec![Entry::plain("wf_input")]);
    chart.line("  wf_output([\"output\"])".to_owned());
    chart.connect(&exits, "wf_output");
    for (class, style) in [
        ("llm", "fill:#e8f0fe,stroke:#3b64c4"),
        ("transform", "fill:#eef7ee,stroke:#3f8f3f"),
        ("external", "fill:#fff4e0,stroke:#c27c0e"),
        ("decision", "fill:#fdeef4,stroke:#b03a6a"),
        ("fork", "fill:#f1ecfb,stroke:#6a4bb0"),
    ] {
        chart.line(format!("  classDef {class} {style}"));
    }
    let mut out = chart.lines.join("\n");
    out.push('\n');
    out
}

/// An edge waiting for the next node: where it comes from, and its label.
#[derive(Clone)]
struct Entry {
    from: String,
    label: Option<String>,
}

impl Entry {
    fn plain(from: &str) -> Entry {
        Entry {
            from: from.to_owned(),
            label: None,
        }
    }

    fn labelled(from: &str, label: &str) -> Entry {
        Entry {
            from: from.to_owned(),
            label: Some(label.to_owned()),
        }
    }
}

struct Chart<'a> {
    default_provider: &'a str,
    lines: Vec<String>,
}

impl Chart<'_> {
    fn line(&mut self, line: String) {
        self.lines.push(line);
    }

    /// Edges from every entry to `to`.
    fn connect(&mut self, entries: &[Entry], to: &str) {
        for entry in entries {
            let line = match &entry.label {
                Some(label) => format!("  {} -- \"{}\" --> {to}", entry.from, escape(label)),
                None => format!("  {} --> {to}", entry.from),
            };
            self.line(line);
        }
    }

    /// Draws `steps` in order, entered by `entries`; returns the edges leaving the last one.
    fn steps(&mut self, steps: &[Step], mut entries: Vec<Entry>) -> Vec<Entry> {
        for step in steps {
            entries = self.step(step, &entries);
        }
        entries
    }

    fn step(&mut self, step: &Step, entries: &[Entry]) -> Vec<Entry> {
        // Prefixed ids: a step may be called `end` or `graph`, which Mermaid reserves.
        let node = format!("s_{}", step.id);
        let mut label = format!("<b>{}</b>", escape(&step.id));
        let retry = match &step.on_error {
            OnError::Retry { attempts, .. } => format!("<br/>retry: {attempts} attempts"),
            OnError::Fail | OnError::Continue | OnError::Default { .. } => String::new(),
        };
        match &step.kind {
            StepKind::Llm(llm) => {
                let provider = llm.provider.as_deref().unwrap_or(self.default_provider);
                let stream = if llm.stream { " · stream" } else { "" };
                let _ = write!(
                    label,
                    "<br/>llm · {}<br/>{}{stream}",
                    escape(provider),
                    escape(&llm.model)
                );
                for fallback in &llm.fallbacks {
                    let _ = write!(
                        label,
                        "<br/>fallback: {} · {}",
                        escape(&fallback.provider),
                        escape(&fallback.model)
                    );
                }
                label.push_str(&retry);
                self.line(format!("  {node}(\"{label}\"):::llm"));
            }
            StepKind::Transform { operation, .. } => {
                let _ = write!(label, "<br/>transform · {operation}{retry}");
                self.line(format!("  {node}[/\"{label}\"/]:::transform"));
            }
            StepKind::ExternalApi(call) => {
                let _ = write!(
                    label,
                    "<br/>external_api · {}{retry}",
                    escape(&call.service())
                );
                self.line(format!("  {node}[[\"{label}\"]]:::external"));
            }
            StepKind::Conditional {
                condition,
                then,
                otherwise,
            } => {
                let _ = write!(label, "<br/>{}", escape(condition.source()));
                self.line(format!("  {node}{{\"{label}\"}}:::decision"));
                self.connect(entries, &node);
                let mut exits = self.steps(then, vec![Entry::labelled(&node, "then")]);
                exits.extend(self.steps(otherwise, vec![Entry::labelled(&node, "else")]));
                return self.join(&step.id, &exits);
            }
            StepKind::Parallel {
                branches,
                fail_fast,
            } => {
                let mode = if *fail_fast {
                    "fail fast"
                } else {
                    "all finish"
                };
                let _ = write!(label, "<br/>parallel · {mode}");
                self.line(format!("  {node}{{{{\"{label}\"}}}}:::fork"));
                self.connect(entries, &node);
                let mut sorted: Vec<&(String, Vec<Step>)> = branches.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                let mut exits = Vec::new();
                for (name, steps) in sorted {
                    exits.extend(self.steps(steps, vec![Entry::labelled(&node, name)]));
                }
                return self.join(&step.id, &exits);
            }
        }
        self.connect(entries, &node);
        vec![Entry::plain(&node)]
    }

    /// The node where the paths of a conditional or parallel step meet again.
    fn join(&mut self, id: &str, exits: &[Entry]) -> Vec<Entry> {
        let node = format!("j_{id}");
        self.line(format!("  {node}((\"join\"))"));
        self.connect(exits, &node);
        vec![Entry::plain(&node)]
    }
}

/// Text made safe inside a quoted Mermaid label: quotes and angle brackets become entity codes,
/// line breaks become `<br/>`.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '#' => out.push_str("#35;"),
            '\n' => out.push_str("<br/>"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn labels_cannot_break_out_of_their_quotes() {
        assert_eq!(
            escape("a > \"b\" && c < #1\nnext"),
            "a #gt; #quot;b#quot; #amp;#amp; c #lt; #35;1<br/>next"
        );
    }
}
