//! `emergency_contacts`: Google Places (through the emulator) and the LLM's Markdown plan,
//! shaped into the app's contacts and meeting locations; a Places outage still completes.

use std::time::Duration;

use serde_json::{json, Value};

use llmflow_core::db::jobs;
use llmflow_testkit::Counter;

use super::{completed_webhook, finished, form_data};
use crate::support::TestApp;

const CATEGORIES: [&str; 7] = [
    "medical",
    "police",
    "fire",
    "pharmacy",
    "utility",
    "community",
    "other",
];

/// Checks every contact against the contract and returns them.
fn contacts(result: &Value) -> Vec<Value> {
    let contacts = result["contacts"].as_array().expect("contacts").clone();
    for contact in &contacts {
        let text = |k: &str| contact[k].as_str().unwrap_or_default().to_owned();
        assert!(!text("name").is_empty(), "{contact}");
        assert!(CATEGORIES.contains(&text("category").as_str()), "{contact}");
        let priority = contact["priority"].as_i64().expect("integer priority");
        assert!((1..=5).contains(&priority), "{contact}");
        assert!(
            ["google_places", "llm"].contains(&text("source").as_str()),
            "{contact}"
        );
        let phone = text("phone");
        assert!(
            phone.chars().filter(char::is_ascii_digit).count() >= 7,
            "a phone number: {contact}"
        );
        for optional in ["address", "notes"] {
            assert!(
                contact.get(optional).is_none_or(Value::is_string),
                "{contact}"
            );
        }
    }
    contacts
}

/// Checks the meeting locations against the contract and returns their kinds.
fn meeting_kinds(result: &Value) -> Vec<String> {
    let locations = result["meetingLocations"].as_array().expect("locations");
    assert!(!locations.is_empty(), "at least one meeting location");
    locations
        .iter()
        .map(|l| {
            for key in ["name", "address", "reason"] {
                assert!(l[key].as_str().is_some_and(|s| !s.is_empty()), "{key}: {l}");
            }
            let kind = l["kind"].as_str().expect("kind").to_owned();
            assert!(
                ["primary", "secondary", "out_of_area"].contains(&kind.as_str()),
                "{l}"
            );
            kind
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn places_and_the_llm_plan_become_the_apps_contacts() {
    let app = TestApp::spawn().await;
    // No Places search is answered until all four are in flight.
    app.emulator.set_rendezvous(4);
    let job_id = app
        .submit_accepted(json!({"workflow_name": "emergency_contacts",
                                "input_data": {"formData": form_data()},
                                "webhook_url": app.receiver.url}))
        .await;
    let doc = finished(&app, &job_id, Duration::from_secs(60)).await;
    assert_eq!(doc["status"], "completed", "{doc:#}");
    let result = &doc["result"];
    let contacts = contacts(result);

    // Every Places result reached the list, tagged with its search's category.
    let places: Vec<&Value> = contacts
        .iter()
        .filter(|c| c["source"] == "google_places")
        .collect();
    let per_query = llmflow_emulator::RESULTS_PER_QUERY;
    assert_eq!(places.len(), 4 * per_query, "{result:#}");
    for (category, searched) in [
        ("medical", "Hospitals"),
        ("police", "Police Stations"),
        ("fire", "Fire Stations"),
        ("pharmacy", "Pharmacies"),
    ] {
        let found: Vec<&&Value> = places
            .iter()
            .filter(|c| c["category"] == category)
            .collect();
        assert_eq!(found.len(), per_query, "{category}: {result:#}");
        for contact in found {
            assert!(
                contact["name"]
                    .as_str()
                    .is_some_and(|n| n.contains(searched)),
                "{contact}"
            );
            assert!(
                contact["address"]
                    .as_str()
                    .is_some_and(|a| a.contains("Lyon")),
                "{contact}"
            );
        }
    }
    // The LLM's own contacts come from its Markdown sections, one category per section.
    let from_llm: Vec<&str> = contacts
        .iter()
        .filter(|c| c["source"] == "llm")
        .filter_map(|c| c["category"].as_str())
        .collect();
    for category in ["medical", "police", "fire", "utility", "community"] {
        assert!(from_llm.contains(&category), "{category}: {result:#}");
    }
    let kinds = meeting_kinds(result);
    assert!(kinds.iter().any(|k| k == "primary"), "{kinds:?}");
    assert!(
        result["summary"]
            .as_str()
            .is_some_and(|s| s.len() > 20 && !s.contains("Emulated reply")),
        "{result:#}"
    );
    assert_eq!(result["cost_data"]["model"], "anthropic/claude-3.5-sonnet");

    let stats = app.emulator.stats();
    assert_eq!((stats.places_calls, stats.calls), (4, 1));
    assert_eq!(
        stats.max_in_flight, 4,
        "the four Places searches ran together"
    );
    let webhook = completed_webhook(&app, &job_id).await;
    assert_eq!(webhook["result"]["contacts"], result["contacts"]);

    // A second household in the same city is answered from the Places cache.
    let again = app
        .submit_accepted(json!({"workflow_name": "emergency_contacts",
                                "input_data": {"formData": form_data()}}))
        .await;
    let doc = finished(&app, &again, Duration::from_secs(60)).await;
    assert_eq!(doc["status"], "completed", "{doc:#}");
    assert_eq!(app.emulator.stats().places_calls, 4, "cached");
    // Elsewhere in the city, the searches are biased to other coordinates: asked afresh.
    let mut elsewhere = form_data();
    elsewhere["location"]["latitude"] = json!(45.70);
    let third = app
        .submit_accepted(json!({"workflow_name": "emergency_contacts",
                                "input_data": {"formData": elsewhere}}))
        .await;
    let doc = finished(&app, &third, Duration::from_secs(60)).await;
    assert_eq!(doc["status"], "completed", "{doc:#}");
    assert_eq!(app.emulator.stats().places_calls, 8, "another centre");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_places_outage_still_gives_an_llm_only_answer() {
    // Google Places is down: every connection to it is closed at once.
    let places = Counter::spawn("127.0.0.1").await;
    let app = TestApp::spawn_with(json!({
        "google_places_base_url": format!("http://{}", places.addr)
    }))
    .await;
    let job_id = app
        .submit_accepted(json!({"workflow_name": "emergency_contacts",
                                "input_data": {"formData": form_data()}}))
        .await;
    let doc = finished(&app, &job_id, Duration::from_secs(60)).await;
    assert_eq!(doc["status"], "completed", "{doc:#}");
    let result = &doc["result"];
    let contacts = contacts(result);
    assert!(!contacts.is_empty(), "{result:#}");
    assert!(contacts.iter().all(|c| c["source"] == "llm"), "{result:#}");
    assert!(!meeting_kinds(result).is_empty());
    assert!(places.connections() >= 4, "the four searches were tried");
    assert_eq!(app.emulator.stats().calls, 1);

    // Each search failed on its own row; the job went on.
    let mut conn = app.conn().await;
    let rows = jobs::job_steps(&mut conn, job_id.parse().expect("uuid"))
        .await
        .expect("steps");
    for id in [
        "places_hospitals",
        "places_police",
        "places_fire_stations",
        "places_pharmacies",
    ] {
        let row = rows
            .iter()
            .find(|r| r.step_id == id)
            .unwrap_or_else(|| panic!("{id} row"));
        assert_eq!(row.status, "failed", "{row:?}");
        assert_eq!(row.error_kind.as_deref(), Some("network"), "{row:?}");
    }
}
