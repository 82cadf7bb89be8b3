//! Text templates for prompts and the `template` transform: minijinja (Jinja2 syntax), plus the
//! `${path}` shorthand, which is the same as `{{ path }}`.

use std::sync::{Arc, LazyLock};

use minijinja::{Environment, UndefinedBehavior};
use regex::Regex;
use serde_json::Value;

const NAME: &str = "template";

/// `${input.text}`, `${steps.analyze.output.tags[0]}` …
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\$\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+|\[[0-9]+\])*)\s*\}")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// A compiled template, cheap to clone and render many times.
#[derive(Clone)]
pub struct Template {
    env: Arc<Environment<'static>>,
    source: Arc<str>,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Template").field(&self.source).finish()
    }
}

/// A template that does not compile or render; the message says where. It is minijinja's
/// error, causes included: print it with [`crate::telemetry::Chain`] for all of them.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct TemplateError(#[from] minijinja::Error);

impl TemplateError {
    /// What went wrong, in minijinja's terms (syntax error, undefined value, …).
    pub fn kind(&self) -> minijinja::ErrorKind {
        self.0.kind()
    }
}

impl Template {
    /// Compiles `source`. Undefined variables may be tested (`{% if steps.refine %}`) but not
    /// printed: printing one is an error, so a typo in a prompt fails loudly instead of sending
    /// an empty string to the model.
    pub fn compile(source: &str) -> Result<Template, TemplateError> {
        let jinja = expand_references(source);
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.add_template_owned(NAME, jinja)?;
        Ok(Template {
            env: Arc::new(env),
            source: source.into(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders with `context` (a JSON object whose keys become the template's variables).
    pub fn render(&self, context: &Value) -> Result<String, TemplateError> {
        let template = self.env.get_template(NAME)?;
        Ok(
            template.render(minijinja::value::Value::from(minijinja::value::Serde(
                context,
            )))?,
        )
    }
}

/// Whether a string uses template syntax at all (plain strings are copied as they are).
pub fn is_template(text: &str) -> bool {
    text.contains("${") || text.contains("{{") || text.contains("{%")
}

/// `${path}` → `{{ path }}`.
fn expand_references(source: &str) -> String {
    REFERENCE.replace_all(source, "{{ $1 }}").into_owned()
}

/// A string that is exactly one `${path}` reference, e.g. `"${steps.analyze.output}"`: it stands
/// for the JSON value at that path, not for its text.
pub fn whole_reference(text: &str) -> Option<&str> {
    let captures = REFERENCE.captures(text.trim())?;
    let whole = captures.get(0)?;
    (whole.as_str().len() == text.trim().len()).then(|| captures.get(1).map(|m| m.as_str()))?
}

/// The value at a dotted path (`steps.analyze.output.tags[0]`) in `scope`; `None` when absent.
pub fn lookup<'a>(scope: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = scope;
    for segment in path.split('.') {
        let (key, indices) = match segment.find('[') {
            Some(at) => (&segment[..at], &segment[at..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            current = current.get(key)?;
        }
        for index in indices.split('[').filter(|s| !s.is_empty()) {
            let index: usize = index.trim_end_matches(']').parse().ok()?;
            current = current.get(index)?;
        }
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dollar_references_render_like_jinja() {
        let t = Template::compile("Hi ${input.name}, {{ input.name | upper }}!").expect("compiles");
        assert_eq!(
            t.render(&json!({"input": {"name": "ada"}}))
                .expect("renders"),
            "Hi ada, ADA!"
        );
    }

    #[test]
    fn printing_an_undefined_variable_is_an_error() {
        let t = Template::compile("${input.missing}").expect("compiles");
        assert!(t.render(&json!({"input": {}})).is_err());
        let t = Template::compile("{% if steps.x %}yes{% else %}no{% endif %}").expect("compiles");
        assert_eq!(t.render(&json!({"steps": {}})).expect("renders"), "no");
    }

    #[test]
    fn urlencode_escapes_a_value_for_a_url_path_but_keeps_slashes_as_jinja_does() {
        let t = Template::compile("/places/{{ input.city | urlencode }}").expect("compiles");
        assert_eq!(
            t.render(&json!({"input": {"city": "São Paulo?x=1&y/z"}}))
                .expect("renders"),
            "/places/S%C3%A3o%20Paulo%3Fx%3D1%26y/z"
        );
    }

    #[test]
    fn syntax_errors_are_reported_at_compile_time() {
        assert!(Template::compile("{{ unclosed").is_err());
    }

    #[test]
    fn whole_references_and_lookup() {
        assert_eq!(whole_reference("${steps.a.output}"), Some("steps.a.output"));
        assert_eq!(whole_reference(" ${input.x[2]} "), Some("input.x[2]"));
        assert_eq!(whole_reference("score: ${input.x}"), None);
        let scope = json!({"input": {"x": [1, 2, {"y": true}]}});
        assert_eq!(lookup(&scope, "input.x[2].y"), Some(&json!(true)));
        assert_eq!(lookup(&scope, "input.x[9]"), None);
        assert_eq!(lookup(&scope, "input.z"), None);
    }
}
