//! Google Places Text Search (New): `POST {GOOGLE_PLACES_BASE_URL}/v1/places:searchText` with
//! the key in `X-Goog-Api-Key` (from `GOOGLE_PLACES_API_KEY`) and the fields wanted in
//! `X-Goog-FieldMask`. The output is the response, `{"places": [...]}` (an empty list when
//! nothing matched: Google then answers `{}`).

use serde_json::{json, Value};

use llmflow_core::config::Config;
use llmflow_core::workflow::{HttpMethod, PlacesCall, GOOGLE_PLACES_SERVICE};

use super::PreparedRequest;
use crate::steps::StepFailure;

/// The request for `call`, its text query and location bias centre already rendered.
pub fn request(
    config: &Config,
    call: &PlacesCall,
    text_query: String,
    centre: Option<(f64, f64)>,
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
    Ok(PreparedRequest {
        service: GOOGLE_PLACES_SERVICE.to_owned(),
        method: HttpMethod::Post,
        url,
        headers: vec![("X-Goog-FieldMask".to_owned(), call.field_mask.clone())],
        secret_headers: vec![("X-Goog-Api-Key".to_owned(), key.to_owned())],
        body: Some(body(call, text_query, centre)),
    })
}

/// The `searchText` body: the query, the options given, and a `locationBias` circle when the
/// step has one and its centre is known.
fn body(call: &PlacesCall, text_query: String, centre: Option<(f64, f64)>) -> Value {
    let mut body = json!({ "textQuery": text_query });
    if let Some(n) = call.max_results {
        body["maxResultCount"] = json!(n);
    }
    if let Some(language) = &call.language_code {
        body["languageCode"] = json!(language);
    }
    if let (Some(bias), Some((latitude, longitude))) = (&call.location_bias, centre) {
        body["locationBias"] = json!({"circle": {
            "center": {"latitude": latitude, "longitude": longitude},
            "radius": bias.radius_m,
        }});
    }
    body
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

#[cfg(test)]
mod tests {
    use super::*;
    use llmflow_core::template::Template;
    use llmflow_core::workflow::{LocationBias, ValueTemplate};

    #[test]
    fn a_location_bias_becomes_a_circle_when_the_centre_is_known() {
        let literal = |v: f64| ValueTemplate::compile(&json!(v), "x").expect("template");
        let call = PlacesCall {
            text_query: Template::compile("q").expect("template"),
            field_mask: "places.id".into(),
            max_results: Some(5),
            language_code: None,
            location_bias: Some(LocationBias {
                latitude: literal(45.0),
                longitude: literal(4.0),
                radius_m: 5000.0,
            }),
        };
        assert_eq!(
            body(&call, "q".into(), Some((45.0, 4.0))),
            json!({"textQuery": "q", "maxResultCount": 5, "locationBias": {"circle": {
                "center": {"latitude": 45.0, "longitude": 4.0}, "radius": 5000.0}}})
        );
        assert_eq!(
            body(&call, "q".into(), None),
            json!({"textQuery": "q", "maxResultCount": 5})
        );
    }
}
