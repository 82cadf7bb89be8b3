//! Paced server-sent-event bodies that keep the call's [`CallGuard`] alive until the last
//! event is handed to actix (or count the call as dropped when actix drops the body early).

use std::collections::VecDeque;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use futures::Stream;
use serde::Serialize;

use crate::state::CallGuard;

/// The error a body stream yields to make actix cut the connection abruptly.
#[derive(Debug, thiserror::Error)]
#[error("llmflow-emulator: connection dropped on purpose (scripted DropMidStream)")]
pub(crate) struct ScriptedDrop;

/// How a stream ends once its events are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// End the body normally.
    Complete,
    /// Cut the connection (no terminating chunk).
    Abort,
}

/// Formats one SSE event (`event:` line only when `name` is given).
pub(crate) fn event(name: Option<&str>, data: &impl Serialize) -> Bytes {
    let data = serde_json::to_string(data).unwrap_or_else(|_| "null".to_owned());
    match name {
        Some(name) => Bytes::from(format!("event: {name}\ndata: {data}\n\n")),
        None => Bytes::from(format!("data: {data}\n\n")),
    }
}

/// Formats a raw `data:` line (e.g. `[DONE]`).
pub(crate) fn raw_data(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

struct Body {
    events: VecDeque<Bytes>,
    delay: Duration,
    first: bool,
    ending: Ending,
    guard: CallGuard,
}

/// A body stream that yields `events`, sleeping `delay` between them, then ends as told.
pub(crate) fn paced(
    events: Vec<Bytes>,
    delay: Duration,
    ending: Ending,
    guard: CallGuard,
) -> impl Stream<Item = Result<Bytes, ScriptedDrop>> {
    let body = Body {
        events: events.into(),
        delay,
        first: true,
        ending,
        guard,
    };
    futures::stream::unfold(Some(body), |body| async move {
        let mut body = body?;
        if let Some(next) = body.events.pop_front() {
            if !body.first && !body.delay.is_zero() {
                tokio::time::sleep(body.delay).await;
            }
            body.first = false;
            return Some((Ok(next), Some(body)));
        }
        match body.ending {
            Ending::Complete => {
                body.guard.finish();
                None
            }
            Ending::Abort => {
                // Give actix a chance to flush what was sent before the connection is cut.
                tokio::time::sleep(body.delay.max(Duration::from_millis(20))).await;
                body.guard.finish();
                Some((Err(ScriptedDrop), None))
            }
        }
    })
}

/// A `text/event-stream` response with the usual streaming headers.
pub(crate) fn response(
    mut builder: HttpResponseBuilder,
    events: Vec<Bytes>,
    delay: Duration,
    ending: Ending,
    guard: CallGuard,
) -> HttpResponse {
    builder
        .content_type("text/event-stream; charset=utf-8")
        .insert_header(("cache-control", "no-cache"))
        .streaming(paced(events, delay, ending, guard))
}

/// A response that closes the connection without sending anything.
pub(crate) fn drop_connection(guard: CallGuard) -> HttpResponse {
    guard.finish();
    HttpResponse::build(StatusCode::OK).streaming(futures::stream::once(async {
        Err::<Bytes, _>(ScriptedDrop)
    }))
}
