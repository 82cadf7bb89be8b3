//! Google Places Text Search, legacy and new.

use serde_json::{json, Value};

use crate::{client, emulator};

#[tokio::test]
async fn legacy_text_search_returns_three_deterministic_results() {
    let emu = emulator().await;
    let url = format!("{}/maps/api/place/textsearch/json", emu.places_base_url());
    let query = [("query", "coffee in Berlin"), ("key", "test-key")];
    let body: Value = client()
        .get(&url)
        .query(&query)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("JSON");
    assert_eq!(body["status"], "OK");
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    for r in results {
        assert!(r["place_id"].as_str().is_some_and(|id| !id.is_empty()));
        assert!(r["name"].as_str().is_some_and(|n| n.contains("Coffee")));
        assert!(r["formatted_address"]
            .as_str()
            .is_some_and(|a| a.ends_with("Berlin")));
        assert!(r["geometry"]["location"]["lat"].is_f64());
        assert!(r["geometry"]["location"]["lng"].is_f64());
        assert!(r["rating"]
            .as_f64()
            .is_some_and(|x| (1.0..=5.0).contains(&x)));
        assert!(r["types"].as_array().is_some_and(|t| !t.is_empty()));
    }
    let again: Value = client()
        .get(&url)
        .query(&query)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("JSON");
    assert_eq!(again, body);

    let other: Value = client()
        .get(&url)
        .query(&[("query", "museums in Rome"), ("key", "k")])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("JSON");
    assert_ne!(
        other["results"][0]["place_id"],
        body["results"][0]["place_id"]
    );
    assert_eq!(emu.stats().places_calls, 3);
    assert_eq!(emu.stats().calls, 0);
}

#[tokio::test]
async fn legacy_text_search_without_key_is_request_denied() {
    let emu = emulator().await;
    let url = format!("{}/maps/api/place/textsearch/json", emu.places_base_url());
    let body: Value = client()
        .get(&url)
        .query(&[("query", "coffee")])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("JSON");
    assert_eq!(body["status"], "REQUEST_DENIED");
    assert!(body["error_message"].is_string());
    assert_eq!(body["results"], json!([]));
}

#[tokio::test]
async fn new_search_text_returns_places() {
    let emu = emulator().await;
    let url = format!("{}/v1/places:searchText", emu.places_base_url());
    let response = client()
        .post(&url)
        .header("X-Goog-Api-Key", "k")
        .header(
            "X-Goog-FieldMask",
            "places.id,places.displayName,places.formattedAddress,places.location,places.rating",
        )
        .json(&json!({"textQuery": "pizza in Naples"}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    let places = body["places"].as_array().expect("places");
    assert_eq!(places.len(), 3);
    for p in places {
        let obj = p.as_object().expect("place object");
        assert_eq!(obj.len(), 5, "field mask applied: {p}");
        assert!(p["id"].is_string());
        assert!(p["displayName"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Pizza")));
        assert_eq!(p["displayName"]["languageCode"], "en");
        assert!(p["formattedAddress"]
            .as_str()
            .is_some_and(|a| a.ends_with("Naples")));
        assert!(p["location"]["latitude"].is_f64() && p["location"]["longitude"].is_f64());
        assert!(p["rating"].is_f64());
    }
    // Same query through the legacy API gives the same places.
    let legacy: Value = client()
        .get(format!(
            "{}/maps/api/place/textsearch/json",
            emu.places_base_url()
        ))
        .query(&[("query", "pizza in Naples"), ("key", "k")])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("JSON");
    assert_eq!(legacy["results"][0]["place_id"], places[0]["id"]);
    assert_eq!(
        legacy["results"][0]["name"],
        places[0]["displayName"]["text"]
    );
}

#[tokio::test]
async fn new_search_text_rejects_missing_key_mask_or_query() {
    let emu = emulator().await;
    let url = format!("{}/v1/places:searchText", emu.places_base_url());
    let no_key = client()
        .post(&url)
        .header("X-Goog-FieldMask", "*")
        .json(&json!({"textQuery": "x"}))
        .send()
        .await
        .expect("send");
    assert_eq!(no_key.status(), 403);
    let err: Value = no_key.json().await.expect("JSON");
    assert_eq!(err["error"]["status"], "PERMISSION_DENIED");
    assert_eq!(err["error"]["code"], 403);

    let no_mask = client()
        .post(&url)
        .header("X-Goog-Api-Key", "k")
        .json(&json!({"textQuery": "x"}))
        .send()
        .await
        .expect("send");
    assert_eq!(no_mask.status(), 400);

    let no_query = client()
        .post(&url)
        .header("X-Goog-Api-Key", "k")
        .header("X-Goog-FieldMask", "*")
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    assert_eq!(no_query.status(), 400);
    let err: Value = no_query.json().await.expect("JSON");
    assert_eq!(err["error"]["status"], "INVALID_ARGUMENT");
}
