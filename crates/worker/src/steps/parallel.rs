//! `parallel` steps: named branches run concurrently as futures of one task (no threads, no
//! spawned tasks). Each branch starts from a snapshot of the scope and adds its own steps'
//! outputs; afterwards every branch's steps are merged into the scope, so later steps see them.
//!
//! Durability is per step, as everywhere: an LLM or external step inside a branch is committed
//! the moment it finishes (through the runner's shared journal), so a resumed job skips it.
//! The step's output is an object keyed by branch name; each branch's output is the output of
//! its last step. With `fail_fast` the first failed branch drops the others (their in-flight
//! calls are abandoned) and the step fails; otherwise every branch runs to its end and a failed
//! one's output is `{"error": "<message>"}`.

use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{Map, Value};

use llmflow_core::workflow::{Step, StepKind};

use crate::engine::{set_output, Runner, Stop};

impl Runner<'_> {
    /// Runs the branches; returns the step's output, or the failure that stops it.
    pub(crate) async fn run_parallel(
        &self,
        scope: &mut Value,
        branches: &[(String, Vec<Step>)],
        fail_fast: bool,
    ) -> Result<Value, Stop> {
        let base: &Value = scope;
        let mut running: FuturesUnordered<_> = branches
            .iter()
            .map(|(name, steps)| async move {
                let mut branch_scope = base.clone();
                let result = self.run_steps(&mut branch_scope, steps, false).await;
                (name, steps, branch_scope, result)
            })
            .collect();
        let mut finished = Vec::with_capacity(branches.len());
        let mut first_failure = None;
        while let Some((name, steps, branch_scope, result)) = running.next().await {
            match result {
                Ok(()) => {
                    let last = steps.last().map(|s| s.id.as_str()).unwrap_or_default();
                    let output = branch_scope["steps"][last]["output"].clone();
                    finished.push((name, branch_scope, output));
                }
                Err(Stop::Failed(message)) => {
                    if fail_fast {
                        tracing::info!(branch = %name, error = %message, "branch failed; cancelling the others");
                        first_failure = Some(format!("branch `{name}` failed: {message}"));
                        break;
                    }
                    let output = serde_json::json!({ "error": message });
                    finished.push((name, branch_scope, output));
                }
                Err(other) => return Err(other),
            }
        }
        // Dropping the unfinished branches drops their in-flight calls.
        drop(running);
        let mut outputs = Map::new();
        let mut merged = Vec::new();
        for (name, branch_scope, output) in finished {
            outputs.insert(name.clone(), output);
            merged.push(branch_scope);
        }
        for branch_scope in merged {
            if let Some(steps) = branch_scope.get("steps").and_then(Value::as_object) {
                for (id, value) in steps {
                    set_output(scope, id, value["output"].clone());
                }
            }
        }
        match first_failure {
            Some(message) => Err(Stop::Failed(message)),
            None => Ok(Value::Object(outputs)),
        }
    }

    /// On resume of a finished parallel step: the outputs of the steps inside that finished
    /// (nothing is run again, not even a branch a fail-fast step cut short).
    pub(crate) fn restore_branches(&self, scope: &mut Value, branches: &[(String, Vec<Step>)]) {
        for (_, steps) in branches {
            self.restore_steps(scope, steps);
        }
    }

    fn restore_steps(&self, scope: &mut Value, steps: &[Step]) {
        for step in steps {
            if let Some(row) = self.done_row(&step.id) {
                set_output(scope, &step.id, row.output.clone().unwrap_or(Value::Null));
            }
            match &step.kind {
                StepKind::Conditional {
                    then, otherwise, ..
                } => {
                    self.restore_steps(scope, then);
                    self.restore_steps(scope, otherwise);
                }
                StepKind::Parallel { branches, .. } => self.restore_branches(scope, branches),
                StepKind::Llm(_) | StepKind::Transform { .. } | StepKind::ExternalApi(_) => {}
            }
        }
    }
}
