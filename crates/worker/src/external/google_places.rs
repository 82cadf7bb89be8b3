//! Google Places Text Search (New): `POST {GOOGLE_PLACES_BASE_URL}/v1/places:searchText` with
//! the key in `X-Goog-Api-Key` (from `GOOGLE_PLACES_API_KEY`) and the fields wanted in
//! `X-Goog-FieldMask`. The output is the response, `{"places": [...]}` (an empty list when
//! nothing matched: Google then answers `{}`).

use serde_json::{json, Value};

use llmflow_core::config::Config;
use llmflow_core::workflow::{HttpMethod, PlacesCall, GOOGLE_PLACES_SERVICE};

use super::PreparedRequest;
use crate::steps::StepFailure;

/// The request for `call`, its text query already rendered.
pub fn request(
    config: &Config,
    call: &PlacesCall,
    text_query: String,
) -> Result<PreparedRequest, StepFailure> {
    let key = Config::secret(&config.google_places_api_key).ok_or_else(|| {
        StepFailure::new(
            "auth",
            "GOOGLE_PLACES_API_KEY is not set: google_places steps need it",
            false,
        )
    })?;
    let base = config.google_places_base_url.trim_end_matches('/');
    let url = reqwest::Url::parse(&format!("{base}/v1/places:searchText")).map_err(|e| {
        StepFailure::new(
            "config",
            format!("GOOGLE_PLACES_BASE_URL is not a URL: {e}"),
            false,
        )
    })?;
    let mut body = json!({ "textQuery": text_query });
    if let Some(n) = call.max_results {
        body["maxResultCount"] = json!(n);
    }
    if let Some(language) = &call.language_code {
        body["languageCode"] = json!(language);
    }
    Ok(PreparedRequest {
        service: GOOGLE_PLACES_SERVICE.to_owned(),
        method: HttpMethod::Post,
        url,
        headers: vec![("X-Goog-FieldMask".to_owned(), call.field_mask.clone())],
        secret_headers: vec![("X-Goog-Api-Key".to_owned(), key.to_owned())],
        body: Some(body),
    })
}

/// Google answers `{}` for no results; the output always has `places`.
pub fn normalise(mut response: Value) -> Value {
    if let Some(object) = response.as_object_mut() {
        object
            .entry("places")
            .or_insert_with(|| Value::Array(Vec::new()));
    }
    response
}
