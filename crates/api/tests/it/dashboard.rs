//! The dashboard's sign-in and session on the API alone: the key only in a POST body, the
//! cookie's attributes, pages refused without it, and the session opening the admin JSON API.

use serde_json::{json, Value};

use crate::support::{TestApp, ADMIN_KEY, API_KEY};

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_comes_from_the_admin_key_and_opens_the_pages() {
    let app = TestApp::spawn_api(json!({})).await;
    let http = no_redirects();
    let page = |path: &str| format!("{}{path}", app.address);

    for path in ["/dashboard", "/dashboard/jobs", "/dashboard/dead"] {
        let response = http.get(page(path)).send().await.expect("request");
        assert_eq!(response.status().as_u16(), 303, "{path}");
        assert_eq!(response.headers()["location"], "/dashboard/login");
    }
    let refused = http
        .post(page("/dashboard/dead/replay"))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status().as_u16(), 401);

    for wrong in [API_KEY, "", "nope"] {
        let response = http
            .post(page("/dashboard/login"))
            .form(&[("key", wrong)])
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 401, "{wrong}");
        assert!(response.headers().get("set-cookie").is_none());
        let body = response.text().await.expect("body");
        assert!(body.contains("not the admin key"), "{body}");
    }

    let response = http
        .post(page("/dashboard/login"))
        .form(&[("key", ADMIN_KEY)])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(response.headers()["location"], "/dashboard");
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(!set_cookie.contains(ADMIN_KEY), "{set_cookie}");
    let cookie = set_cookie.split(';').next().expect("pair").to_owned();

    for path in [
        "/dashboard",
        "/dashboard/jobs?status=failed",
        "/dashboard/dead",
    ] {
        let response = http
            .get(page(path))
            .header("Cookie", &cookie)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let body = response.text().await.expect("body");
        assert!(body.contains("<main>"), "{path}: {body}");
    }
    let response = http
        .get(app.url("/admin/overview"))
        .header("Cookie", &cookie)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.expect("json");
    assert!(body["last_hour"]["finished"].is_number(), "{body}");

    // A write carried by the cookie from another origin is refused.
    let response = http
        .post(app.url("/admin/webhooks/dead/replay"))
        .header("Cookie", &cookie)
        .header("Origin", "https://elsewhere.example")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 403);
    let response = http
        .post(page("/dashboard/dead/replay"))
        .header("Cookie", &cookie)
        .header("Origin", &app.address)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 303);
    let (status, audit) = {
        let r = http
            .get(app.url("/admin/audit"))
            .header("X-API-Key", ADMIN_KEY)
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.json::<Value>().await.expect("json"))
    };
    assert_eq!(status, 200);
    assert_eq!(audit["items"][0]["action"], "replay_all");
    assert_eq!(audit["items"][0]["actor"], "dashboard");

    let response = http
        .post(page("/dashboard/logout"))
        .header("Cookie", &cookie)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 303);
    assert!(response.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .contains("Max-Age=0"));
}
