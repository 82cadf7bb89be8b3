//! Google Places Text Search: the legacy `GET /maps/api/place/textsearch/json` and the new
//! `POST /v1/places:searchText`, each answering three results derived from the query text.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::content::{fnv1a, mix};
use crate::state::{Action, CallGuard, CallKind, Shared};

/// Results per search (the new API's `maxResultCount` / `pageSize` may ask for fewer).
pub const RESULTS_PER_QUERY: usize = 3;

const PREFIXES: [&str; 6] = [
    "The",
    "Central",
    "Old Town",
    "Corner",
    "Riverside",
    "Golden",
];
const STREETS: [&str; 6] = ["Main", "Market", "Station", "Church", "Park", "Harbour"];

/// One generated place, rendered by each API form.
#[derive(Clone, Debug, PartialEq)]
struct Place {
    id: String,
    name: String,
    address: String,
    lat: f64,
    lng: f64,
    rating: f64,
    ratings_total: u64,
    types: Vec<&'static str>,
    /// National form, in the range reserved for fiction (`(555) 555-01XX`).
    phone: String,
}

fn title_case(words: &str) -> String {
    words
        .split_whitespace()
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect()
            })
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn round(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

/// The deterministic results for a query.
fn search(query: &str, count: usize) -> Vec<Place> {
    let normalized = query.trim().to_lowercase();
    let seed = fnv1a(normalized.as_bytes());
    let (what, city) = match normalized.rsplit_once(" in ") {
        Some((what, city)) if !what.trim().is_empty() && !city.trim().is_empty() => {
            (what.trim().to_owned(), title_case(city))
        }
        _ => (normalized.clone(), "Springfield".to_owned()),
    };
    let what = title_case(
        &what
            .split_whitespace()
            .take(5)
            .collect::<Vec<_>>()
            .join(" "),
    );
    let types: Vec<&'static str> = if ["coffee", "cafe", "café"]
        .iter()
        .any(|k| normalized.contains(k))
    {
        vec!["cafe", "food", "point_of_interest", "establishment"]
    } else if ["restaurant", "pizza", "food", "sushi"]
        .iter()
        .any(|k| normalized.contains(k))
    {
        vec!["restaurant", "food", "point_of_interest", "establishment"]
    } else if ["hotel", "hostel"].iter().any(|k| normalized.contains(k)) {
        vec!["lodging", "point_of_interest", "establishment"]
    } else if ["hospital", "clinic"]
        .iter()
        .any(|k| normalized.contains(k))
    {
        vec!["hospital", "health", "point_of_interest", "establishment"]
    } else if normalized.contains("pharmac") {
        vec![
            "pharmacy",
            "health",
            "store",
            "point_of_interest",
            "establishment",
        ]
    } else if normalized.contains("police") {
        vec!["police", "point_of_interest", "establishment"]
    } else if normalized.contains("fire") {
        vec!["fire_station", "point_of_interest", "establishment"]
    } else {
        vec!["point_of_interest", "establishment"]
    };
    let base_lat = -60.0 + (mix(seed, 1) % 120_000) as f64 / 1000.0;
    let base_lng = -180.0 + (mix(seed, 2) % 360_000) as f64 / 1000.0;
    (0..count.min(RESULTS_PER_QUERY))
        .map(|i| {
            let i64 = u64::try_from(i).unwrap_or_default();
            let r = mix(seed, 10 + i64);
            let prefix = PREFIXES[(r % PREFIXES.len() as u64) as usize];
            let street = STREETS[((r >> 8) % STREETS.len() as u64) as usize];
            Place {
                id: format!("ChIJ{:016x}{:07x}", r, mix(r, 3) & 0x0fff_ffff),
                name: if what.is_empty() {
                    format!("{prefix} Place")
                } else {
                    format!("{prefix} {what}")
                },
                address: format!("{} {street} Street, {city}", 1 + (r >> 16) % 200),
                lat: round(
                    base_lat + 0.01 * i as f64 + ((r >> 24) % 1000) as f64 / 1e6,
                    7,
                ),
                lng: round(
                    base_lng + 0.01 * i as f64 + ((r >> 34) % 1000) as f64 / 1e6,
                    7,
                ),
                rating: round(3.5 + ((r >> 44) % 16) as f64 / 10.0, 1),
                ratings_total: 10 + (r >> 50) % 2000,
                types: types.clone(),
                phone: format!("(555) 555-01{:02}", (r >> 40) % 100),
            }
        })
        .collect()
}

fn finish(guard: CallGuard, response: HttpResponse) -> HttpResponse {
    guard.finish();
    response
}

fn legacy_result(place: &Place) -> Value {
    let corner = |d: f64| json!({"lat": round(place.lat + d, 7), "lng": round(place.lng + d, 7)});
    json!({
        "business_status": "OPERATIONAL",
        "formatted_address": place.address,
        "geometry": {
            "location": {"lat": place.lat, "lng": place.lng},
            "viewport": {"northeast": corner(0.0013), "southwest": corner(-0.0013)},
        },
        "icon": "https://maps.gstatic.com/mapfiles/place_api/icons/v1/png_71/generic_business-71.png",
        "name": place.name,
        "place_id": place.id,
        "rating": place.rating,
        "reference": place.id,
        "types": place.types,
        "user_ratings_total": place.ratings_total,
    })
}

fn legacy_status(status: &str, message: Option<&str>) -> Value {
    let mut body = json!({"html_attributions": [], "results": [], "status": status});
    if let Some(message) = message {
        body["error_message"] = json!(message);
    }
    body
}

/// Handler for the legacy `GET /maps/api/place/textsearch/json?query=…&key=…`.
pub(crate) async fn legacy_text_search(
    req: HttpRequest,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let guard = shared.begin_call(&req, CallKind::Places);
    let params = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default();
    let param = |name: &str| params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    if param("key").is_none() {
        let body = legacy_status(
            "REQUEST_DENIED",
            Some("You must use an API key to authenticate each request to Google Maps Platform APIs. For additional information, please refer to http://g.co/dev/maps-no-account"),
        );
        return finish(guard, HttpResponse::Ok().json(body));
    }
    let Some(query) = param("query") else {
        let body = legacy_status("INVALID_REQUEST", Some("Missing the 'query' parameter."));
        return finish(guard, HttpResponse::Ok().json(body));
    };
    let plan = shared.plan(&req, CallKind::Places);
    plan.wait(&shared).await;
    if plan.action == Action::InjectedError {
        let body = legacy_status("UNKNOWN_ERROR", Some("Injected error (llmflow-emulator)."));
        return finish(guard, HttpResponse::InternalServerError().json(body));
    }
    let results: Vec<Value> = search(query, RESULTS_PER_QUERY)
        .iter()
        .map(legacy_result)
        .collect();
    let body = json!({"html_attributions": [], "results": results, "status": "OK"});
    finish(guard, HttpResponse::Ok().json(body))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchTextRequest {
    text_query: Option<String>,
    max_result_count: Option<usize>,
    page_size: Option<usize>,
    language_code: Option<String>,
}

fn google_error(status: StatusCode, reason: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "error": {"code": status.as_u16(), "message": message, "status": reason}
    }))
}

fn new_place(place: &Place, language: &str) -> Value {
    json!({
        "name": format!("places/{}", place.id),
        "id": place.id,
        "types": place.types,
        "formattedAddress": place.address,
        "nationalPhoneNumber": place.phone,
        "internationalPhoneNumber": format!("+1 {}", place.phone.replace(['(', ')'], "").replace(' ', "-")),
        "location": {"latitude": place.lat, "longitude": place.lng},
        "rating": place.rating,
        "userRatingCount": place.ratings_total,
        "googleMapsUri": format!("https://maps.google.com/?cid={}", fnv1a(place.id.as_bytes())),
        "businessStatus": "OPERATIONAL",
        "displayName": {"text": place.name, "languageCode": language},
    })
}

/// Applies a response field mask (`*`, `places`, `places.displayName`, …) to a reply.
fn apply_field_mask(places: Vec<Value>, mask: &str) -> Value {
    let paths: Vec<&str> = mask
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if paths
        .iter()
        .any(|p| *p == "*" || *p == "places" || *p == "places.*")
    {
        return json!({"places": places});
    }
    let fields: Vec<&str> = paths
        .iter()
        .filter_map(|p| p.strip_prefix("places."))
        .map(|p| p.split('.').next().unwrap_or(p))
        .collect();
    if fields.is_empty() {
        return json!({});
    }
    let places: Vec<Value> = places
        .into_iter()
        .map(|place| {
            let kept: Map<String, Value> = place
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| fields.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Value::Object(kept)
        })
        .collect();
    json!({"places": places})
}

/// Handler for the new `POST /v1/places:searchText`.
pub(crate) async fn search_text(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let guard = shared.begin_call(&req, CallKind::Places);
    let params = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let key = header("x-goog-api-key").or_else(|| params.get("key").cloned());
    if key.is_none_or(|k| k.is_empty()) {
        let response = google_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "The request is missing a valid API key.",
        );
        return finish(guard, response);
    }
    let mask = header("x-goog-fieldmask")
        .or_else(|| params.get("fields").cloned())
        .or_else(|| params.get("$fields").cloned());
    let Some(mask) = mask else {
        let response = google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "FieldMask is a required parameter. See https://cloud.google.com/apis/docs/system-parameters on how to provide it. As an example, you can set the header 'X-Goog-FieldMask' to value 'places.displayName', or set the query parameter 'fields' to the same value.",
        );
        return finish(guard, response);
    };
    let request: SearchTextRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            let message = format!("Invalid JSON payload received. {e}");
            let response = google_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", &message);
            return finish(guard, response);
        }
    };
    let Some(query) = request.text_query.filter(|q| !q.trim().is_empty()) else {
        let response = google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Empty text_query.",
        );
        return finish(guard, response);
    };
    let plan = shared.plan(&req, CallKind::Places);
    plan.wait(&shared).await;
    if plan.action == Action::InjectedError {
        let response = google_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "Internal error encountered.",
        );
        return finish(guard, response);
    }
    let count = request
        .max_result_count
        .or(request.page_size)
        .filter(|n| *n > 0)
        .unwrap_or(RESULTS_PER_QUERY);
    let language = request.language_code.unwrap_or_else(|| "en".to_owned());
    let places = search(&query, count)
        .iter()
        .map(|p| new_place(p, &language))
        .collect();
    finish(
        guard,
        HttpResponse::Ok().json(apply_field_mask(places, &mask)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_deterministic_and_distinct() {
        let a = search("coffee in berlin", 3);
        assert_eq!(a, search("  Coffee in Berlin ", 3));
        assert_eq!(a.len(), 3);
        assert!(a
            .iter()
            .all(|p| p.address.ends_with("Berlin") && p.name.contains("Coffee")));
        assert!(a.iter().all(|p| (3.5..=5.0).contains(&p.rating)));
        assert_ne!(a[0].id, a[1].id);
        assert_ne!(search("tea in paris", 3)[0].id, a[0].id);
        assert_eq!(a[0].types[0], "cafe");
        assert_eq!(search("pharmacies in lyon", 1)[0].types[0], "pharmacy");
        assert_eq!(
            search("fire stations in lyon", 1)[0].types[0],
            "fire_station"
        );
        assert!(a.iter().all(|p| p.phone.starts_with("(555) 555-01")));
    }

    #[test]
    fn field_mask_filters_place_fields() {
        let places = search("pizza", 2)
            .iter()
            .map(|p| new_place(p, "en"))
            .collect::<Vec<_>>();
        let masked = apply_field_mask(places.clone(), "places.displayName,places.rating");
        let first = masked["places"][0].as_object().expect("object");
        assert_eq!(first.len(), 2);
        assert!(first.contains_key("displayName") && first.contains_key("rating"));
        assert_eq!(
            apply_field_mask(places.clone(), "*")["places"][0],
            places[0]
        );
        assert_eq!(apply_field_mask(places, "nextPageToken"), json!({}));
    }
}
