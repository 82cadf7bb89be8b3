//! `llmflow new`: scaffolds a workflow and its prompt file from a template, checked to be valid
//! before it is kept.

use std::path::{Path, PathBuf};

use llmflow_core::workflow::LoadedWorkflow;

use crate::error::{CliError, CliResult};
use crate::source::Settings;

/// Scaffold a valid workflow (`<name>.json` in WORKFLOWS_DIR) and its prompt file
/// (`<name>.md` in PROMPTS_DIR).
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  llmflow new summarise\n  \
llmflow new triage --template pipeline\n  \
llmflow new clinics --template places --model openai/gpt-4o-mini")]
pub struct Args {
    /// The workflow's name (letters, digits, `_` and `-`): what callers submit.
    name: String,
    /// What to start from: one LLM call; an LLM → extract → branch pipeline; or a Google Places
    /// search summarised by an LLM.
    #[arg(long, value_enum, default_value_t = Template::Llm)]
    template: Template,
    /// The model of the LLM steps (must be in the pricing table).
    #[arg(long, default_value = "openai/gpt-4o-mini")]
    model: String,
    /// Folder for the workflow (default WORKFLOWS_DIR or ./workflows).
    #[arg(long)]
    workflows: Option<PathBuf>,
    /// Folder for the prompt file (default PROMPTS_DIR or ./prompts).
    #[arg(long)]
    prompts: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Template {
    Llm,
    Pipeline,
    Places,
}

pub async fn run(args: Args) -> CliResult {
    let settings = Settings::load()?;
    let name = &args.name;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(CliError::bad(format!(
            "`{name}` is not a usable workflow name: letters, digits, `_` and `-` only"
        )));
    }
    if args.model.contains('"') || args.model.contains('\\') {
        return Err(CliError::bad(format!(
            "`{}` is not a model name",
            args.model
        )));
    }
    let workflows = args
        .workflows
        .unwrap_or_else(|| settings.config.workflows_dir.clone());
    let prompts = args
        .prompts
        .unwrap_or_else(|| settings.config.prompts_dir.clone());
    let workflow_file = workflows.join(format!("{name}.json"));
    let prompt_file = prompts.join(format!("{name}.md"));
    for file in [&workflow_file, &prompt_file] {
        if file.exists() {
            return Err(CliError::bad(format!(
                "{} already exists: choose another name",
                file.display()
            )));
        }
    }
    let (definition, prompt) = scaffold(args.template, name, &args.model);
    // Checked before anything is written: the prompt is inlined as the loader would.
    let source: serde_json::Value = serde_json::from_str(&definition)
        .map_err(|e| anyhow::anyhow!("the {name} template is not JSON: {e}"))?;
    let mut inlined = source.clone();
    inline_prompt(&mut inlined, &format!("{name}.md"), &prompt);
    LoadedWorkflow::from_definition_checked(inlined, settings.checks()).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        CliError::bad(format!(
            "the scaffold would not validate:\n  {}",
            list.join("\n  ")
        ))
    })?;
    write_new(&workflows, &workflow_file, &definition)?;
    write_new(&prompts, &prompt_file, &prompt)?;
    println!("created {}", workflow_file.display());
    println!("created {}", prompt_file.display());
    println!(
        "next: llmflow diagram {name} · llmflow dry-run {name} --input input.json · llmflow validate"
    );
    Ok(())
}

fn write_new(dir: &Path, file: &Path, text: &str) -> CliResult {
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::bad(format!("cannot create {}: {e}", dir.display())))?;
    std::fs::write(file, text)
        .map_err(|e| CliError::bad(format!("cannot write {}: {e}", file.display())))
}

/// Replaces `prompt_file: <file>` with the prompt's text, wherever it is in the steps.
fn inline_prompt(value: &mut serde_json::Value, file: &str, prompt: &str) {
    match value {
        serde_json::Value::Object(map) => {
            if map.get("prompt_file").and_then(|f| f.as_str()) == Some(file) {
                map.remove("prompt_file");
                map.insert("prompt".to_owned(), prompt.into());
            }
            for child in map.values_mut() {
                inline_prompt(child, file, prompt);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                inline_prompt(item, file, prompt);
            }
        }
        _ => {}
    }
}

/// The definition (JSON text, keys in reading order) and the prompt file of a template.
fn scaffold(template: Template, name: &str, model: &str) -> (String, String) {
    let text_input = r#"{
    "type": "object",
    "required": ["text"],
    "properties": {
      "text": {"type": "string", "minLength": 1, "maxLength": 20000}
    }
  }"#;
    match template {
        Template::Llm => (
            format!(
                r#"{{
  "name": "{name}",
  "version": "1.0.0",
  "description": "Answers one LLM call about a text. Written by `llmflow new`: describe what it is for.",
  "input_schema": {text_input},
  "steps": [
    {{
      "id": "answer",
      "type": "llm",
      "model": "{model}",
      "prompt_file": "{name}.md",
      "max_tokens": 300,
      "timeout_ms": 60000,
      "on_error": {{"mode": "retry", "attempts": 2, "backoff_ms": 500}}
    }}
  ],
  "output": {{
    "answer": "${{steps.answer.output}}"
  }}
}}
"#
            ),
            "Summarise the text below in three sentences.\n\nText:\n{{ input.text }}\n".to_owned(),
        ),
        Template::Pipeline => (
            format!(
                r#"{{
  "name": "{name}",
  "version": "1.0.0",
  "description": "Analyses a text as JSON, extracts its fields, and refines a high-scoring summary or falls back to a template. Written by `llmflow new`.",
  "input_schema": {text_input},
  "steps": [
    {{
      "id": "analyze",
      "type": "llm",
      "model": "{model}",
      "system": "You are a precise analyst. Answer only with JSON.",
      "prompt_file": "{name}.md",
      "response_format": "json",
      "json_schema": {{"type": "object", "required": ["summary", "score"]}},
      "temperature": 0.2,
      "max_tokens": 300,
      "timeout_ms": 60000,
      "on_error": {{"mode": "retry", "attempts": 2, "backoff_ms": 500}}
    }},
    {{
      "id": "extract",
      "type": "transform",
      "input": "${{steps.analyze.output}}",
      "operation": "extract_fields",
      "fields": {{"summary": "$.summary", "score": "$.score"}}
    }},
    {{
      "id": "route",
      "type": "conditional",
      "condition": "steps.extract.output.score > 50",
      "then": [
        {{
          "id": "refine",
          "type": "llm",
          "model": "{model}",
          "prompt": "Rewrite this summary as one crisp headline:\n${{steps.extract.output.summary}}",
          "max_tokens": 60
        }}
      ],
      "else": [
        {{
          "id": "fallback",
          "type": "transform",
          "operation": "template",
          "template": "Low priority: {{{{ steps.extract.output.summary }}}}"
        }}
      ]
    }}
  ],
  "output": {{
    "summary": "${{steps.extract.output.summary}}",
    "score": "${{steps.extract.output.score}}",
    "refined": "${{steps.refine.output}}",
    "fallback": "${{steps.fallback.output}}"
  }}
}}
"#
            ),
            "Read the text below and answer with a JSON object with these keys:\n\
             - \"summary\": one sentence that summarises the text\n\
             - \"score\": an integer from 0 to 100 for how actionable the text is\n\n\
             Text:\n{{ input.text }}\n"
                .to_owned(),
        ),
        Template::Places => (
            format!(
                r#"{{
  "name": "{name}",
  "version": "1.0.0",
  "description": "Searches Google Places in a city and has an LLM summarise what it found. Written by `llmflow new`.",
  "input_schema": {{
    "type": "object",
    "required": ["city"],
    "properties": {{
      "city": {{"type": "string", "minLength": 1, "maxLength": 100}}
    }}
  }},
  "steps": [
    {{
      "id": "search",
      "type": "external_api",
      "service": "google_places",
      "query": "pharmacies in ${{input.city}}",
      "max_results": 10,
      "timeout_ms": 15000,
      "on_error": {{"mode": "retry", "attempts": 3, "backoff_ms": 500}}
    }},
    {{
      "id": "places",
      "type": "transform",
      "input": "${{steps.search.output.places}}",
      "operation": "map",
      "fields": {{"name": "$.displayName.text", "address": "$.formattedAddress", "rating": "$.rating"}}
    }},
    {{
      "id": "summary",
      "type": "llm",
      "model": "{model}",
      "prompt_file": "{name}.md",
      "max_tokens": 400,
      "timeout_ms": 60000
    }}
  ],
  "output": {{
    "places": "${{steps.places.output}}",
    "summary": "${{steps.summary.output}}"
  }}
}}
"#
            ),
            "Here are places found in {{ input.city }}, as JSON:\n\
             {{ steps.places.output | tojson }}\n\n\
             Write a short Markdown list of the three most useful ones, each with its address.\n"
                .to_owned(),
        ),
    }
}
