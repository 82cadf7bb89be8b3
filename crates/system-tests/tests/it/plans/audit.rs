//! A diesel connection whose every executed statement's plan comes back as a notice
//! (`auto_explain`), the plans gathered per label, and the rules they are checked against.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use futures::future::poll_fn;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

/// A connection with `auto_explain` loaded into its session.
pub struct Audited {
    pub conn: AsyncPgConnection,
    notices: mpsc::UnboundedReceiver<String>,
}

const EXPLAIN_EVERY_STATEMENT: &str = "LOAD 'auto_explain'; \
    SET auto_explain.log_min_duration = 0; \
    SET auto_explain.log_format = 'json'; \
    SET auto_explain.log_level = 'notice'; \
    SET auto_explain.log_nested_statements = on; \
    SET client_min_messages = 'notice';";

impl Audited {
    /// Plans only, with `plan_cache_mode` set to `mode` (`auto`, `force_generic_plan`,
    /// `force_custom_plan`).
    pub async fn open(url: &str, mode: &str) -> Audited {
        Self::with(
            url,
            &format!("{EXPLAIN_EVERY_STATEMENT} SET plan_cache_mode = '{mode}';"),
        )
        .await
    }

    /// As [`Audited::open`], in a session set up as the worker's and the webhook sender's are
    /// (`ConnectOptions::avoid_seq_scans`).
    pub async fn open_as_services(url: &str, mode: &str) -> Audited {
        Self::with(
            url,
            &format!(
                "{EXPLAIN_EVERY_STATEMENT} SET plan_cache_mode = '{mode}'; {};",
                llmflow_core::db::connect::AVOID_SEQ_SCANS
            ),
        )
        .await
    }

    /// Plans with what each node did (rows, pages touched), as `EXPLAIN (ANALYZE, BUFFERS)`.
    pub async fn open_analysing(url: &str) -> Audited {
        Self::with(
            url,
            &format!(
                "{EXPLAIN_EVERY_STATEMENT} SET auto_explain.log_analyze = on; \
                 SET auto_explain.log_buffers = on; SET auto_explain.log_timing = off;"
            ),
        )
        .await
    }

    async fn with(url: &str, settings: &str) -> Audited {
        let (client, mut connection) = tokio_postgres::connect(url, NoTls)
            .await
            .expect("connect to the test database");
        let (tx, notices) = mpsc::unbounded_channel();
        // The connection's driver: a notice is read (and sent on) before the reply that
        // follows it, so a statement's plan is here by the time its call returns.
        tokio::spawn(async move {
            while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notice(notice)) => {
                        let _ = tx.send(notice.message().to_owned());
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        let mut conn = AsyncPgConnection::try_from(client)
            .await
            .expect("diesel connection");
        conn.batch_execute(settings)
            .await
            .expect("auto_explain settings (the test user must be a superuser to LOAD it)");
        let mut audited = Audited { conn, notices };
        audited.drain();
        audited
    }

    /// Forgets the plans gathered so far.
    pub fn drain(&mut self) {
        while self.notices.try_recv().is_ok() {}
    }

    /// The plans of the statements run since the last call, under `label`.
    pub fn take(&mut self, label: &str) -> Labelled {
        let mut plans = Vec::new();
        while let Ok(notice) = self.notices.try_recv() {
            let Some(start) = notice.find('{') else {
                continue;
            };
            let plan: Value = serde_json::from_str(&notice[start..])
                .unwrap_or_else(|e| panic!("auto_explain notice is not JSON ({e}): {notice}"));
            plans.push(plan);
        }
        assert!(!plans.is_empty(), "{label}: no statement was explained");
        Labelled {
            label: label.to_owned(),
            plans,
        }
    }
}

/// The plans of one labelled step.
pub struct Labelled {
    pub label: String,
    pub plans: Vec<Value>,
}

impl Labelled {
    /// Pages touched (shared buffers hit or read) by every statement, from analysing plans.
    pub fn buffers(&self) -> u64 {
        self.plans
            .iter()
            .map(|p| {
                let top = &p["Plan"];
                top["Shared Hit Blocks"].as_u64().unwrap_or(0)
                    + top["Shared Read Blocks"].as_u64().unwrap_or(0)
            })
            .sum()
    }
}

/// The plans of a whole run, in order.
#[derive(Default)]
pub struct Plans(Vec<Labelled>);

impl Plans {
    pub fn add(&mut self, labelled: Labelled) {
        self.0.push(labelled);
    }

    /// One line per statement: its label, the start of its text, and its plan's shape.
    pub fn shapes(&self) -> String {
        let mut out = String::new();
        for labelled in &self.0 {
            for plan in &labelled.plans {
                let text = plan["Query Text"].as_str().unwrap_or("");
                let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
                let text: String = text.chars().take(72).collect();
                let _ = writeln!(
                    out,
                    "- {}: `{text}…` → {}",
                    labelled.label,
                    shape(&plan["Plan"])
                );
            }
        }
        out
    }

    fn labelled<'a>(&'a self, label: &'a str) -> impl Iterator<Item = &'a Labelled> + 'a {
        self.0.iter().filter(move |l| l.label == label)
    }
}

/// A plan node as the rules see it.
struct Node<'a> {
    kind: &'a str,
    relation: Option<&'a str>,
    /// The index it reads: its own, or for a bitmap heap scan those of its bitmap index scans.
    indexes: Vec<&'a str>,
    description: String,
}

fn nodes<'a>(plan: &'a Value, out: &mut Vec<Node<'a>>) {
    let kind = plan["Node Type"].as_str().unwrap_or("?");
    let relation = plan["Relation Name"].as_str();
    let mut indexes: Vec<&str> = plan["Index Name"].as_str().into_iter().collect();
    if kind == "Bitmap Heap Scan" {
        let mut below = Vec::new();
        for child in plan["Plans"].as_array().into_iter().flatten() {
            nodes(child, &mut below);
        }
        indexes.extend(below.iter().flat_map(|n| n.indexes.iter().copied()));
    }
    out.push(Node {
        kind,
        relation,
        indexes,
        description: describe(plan),
    });
    for child in plan["Plans"].as_array().into_iter().flatten() {
        nodes(child, out);
    }
}

fn describe(plan: &Value) -> String {
    let mut text = plan["Node Type"].as_str().unwrap_or("?").to_owned();
    if let Some(operation) = plan["Operation"].as_str() {
        text = operation.to_owned();
    }
    if let Some(index) = plan["Index Name"].as_str() {
        let _ = write!(text, " using {index}");
    }
    if let Some(relation) = plan["Relation Name"].as_str() {
        let _ = write!(text, " on {relation}");
    }
    text
}

fn shape(plan: &Value) -> String {
    let children: Vec<String> = plan["Plans"]
        .as_array()
        .into_iter()
        .flatten()
        .map(shape)
        .collect();
    match children.len() {
        0 => describe(plan),
        1 => format!("{} ← {}", describe(plan), children[0]),
        _ => format!("{} ← ({})", describe(plan), children.join(" + ")),
    }
}

fn is_scan(node: &Node<'_>) -> bool {
    node.relation.is_some() && node.kind != "ModifyTable"
}

/// What the plans must show.
#[derive(Default)]
pub struct Rules {
    /// label → (table, the one index every scan of that table must use).
    only: BTreeMap<String, Vec<(&'static str, &'static str)>>,
    /// label → text some node's description must contain.
    uses: Vec<(&'static str, &'static str)>,
}

impl Rules {
    pub fn only(mut self, labels: &[&str], table: &'static str, index: &'static str) -> Self {
        for label in labels {
            self.only
                .entry((*label).to_owned())
                .or_default()
                .push((table, index));
        }
        self
    }

    pub fn uses(mut self, label: &'static str, needle: &'static str) -> Self {
        self.uses.push((label, needle));
        self
    }

    /// The id-addressed statements use the primary key; with `all`, the background ones
    /// their partial indexes too (those choices only matter, and are only made, once the
    /// tables hold rows and statistics).
    pub fn check_indexes(&self, what: &str, plans: &Plans, all: bool) {
        let mut problems = Vec::new();
        for (label, wanted) in &self.only {
            for (table, index) in wanted {
                let mut seen = 0;
                for labelled in plans.labelled(label) {
                    for plan in &labelled.plans {
                        let mut all = Vec::new();
                        nodes(&plan["Plan"], &mut all);
                        for node in all.iter().filter(|n| is_scan(n)) {
                            if node.relation != Some(table) {
                                continue;
                            }
                            seen += 1;
                            if node.indexes.is_empty() || node.indexes.iter().any(|i| i != index) {
                                problems.push(format!(
                                    "{label}: {} (wanted {index}) in `{}`",
                                    node.description, plan["Query Text"]
                                ));
                            }
                        }
                    }
                }
                if seen == 0 {
                    problems.push(format!("{label}: no statement read {table}"));
                }
            }
        }
        for (label, needle) in self.uses.iter().filter(|_| all) {
            let found = plans.labelled(label).any(|labelled| {
                labelled.plans.iter().any(|plan| {
                    let mut all = Vec::new();
                    nodes(&plan["Plan"], &mut all);
                    all.iter().any(|n| n.description.contains(needle))
                })
            });
            if !found {
                problems.push(format!("{label}: no `{needle}` in its plans"));
            }
        }
        assert!(
            problems.is_empty(),
            "{what}:\n{}\n\nplans:\n{}",
            problems.join("\n"),
            plans.shapes()
        );
    }

    /// No statement reads a large table whole.
    pub fn check_no_full_scans(&self, what: &str, plans: &Plans, large: &[&str]) {
        let mut problems = Vec::new();
        for labelled in &plans.0 {
            for plan in &labelled.plans {
                let mut all = Vec::new();
                nodes(&plan["Plan"], &mut all);
                for node in &all {
                    if node.kind == "Seq Scan" && node.relation.is_some_and(|r| large.contains(&r))
                    {
                        problems.push(format!(
                            "{}: {} in `{}`",
                            labelled.label, node.description, plan["Query Text"]
                        ));
                    }
                }
            }
        }
        assert!(
            problems.is_empty(),
            "{what}: sequential scans of large tables:\n{}\n\nplans:\n{}",
            problems.join("\n"),
            plans.shapes()
        );
    }
}
