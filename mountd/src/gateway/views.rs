//! The store's other views over HTTP: key/value stores (`/kv`), SQL
//! (`/sql`) and the event stream of ref updates (`/events`).

use super::*;

fn kv_key(uri: &Uri) -> Result<Vec<u8>, Failure> {
    let raw = rest_of(uri, 2);
    http::percent_decode(&raw).ok_or_else(|| Failure(StatusCode::BAD_REQUEST, "bad key".into()))
}

pub(super) async fn kv_get(
    State(gw): State<Shared>,
    UrlPath(params): UrlPath<Vec<(String, String)>>,
    uri: Uri,
) -> Response {
    let name = params.first().map(|p| p.1.clone()).unwrap_or_default();
    let key = match kv_key(&uri) {
        Ok(k) => k,
        Err(f) => return f.into_response(),
    };
    let bucket = gw.bucket();
    let found = blocking(move || {
        let tree = Kv::open(bucket, &name)
            .and_then(|kv| kv.tree())
            .map_err(failure)?;
        tree.get(&key).map_err(failure)
    })
    .await;
    match found {
        Ok(Some(v)) => ([(header::CONTENT_TYPE, "application/octet-stream")], v).into_response(),
        Ok(None) => Failure(StatusCode::NOT_FOUND, "no such key".into()).into_response(),
        Err(f) => f.into_response(),
    }
}

pub(super) async fn kv_list(
    State(gw): State<Shared>,
    UrlPath(name): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let prefix = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("prefix="))
        .and_then(http::percent_decode)
        .unwrap_or_default();
    let bucket = gw.bucket();
    let rows = blocking(move || {
        let tree = Kv::open(bucket, &name)
            .and_then(|kv| kv.tree())
            .map_err(failure)?;
        let end = hydra_kv::prefix_end(&prefix);
        let mut rows = Vec::new();
        tree.scan(
            std::ops::Bound::Included(&prefix[..]),
            end.as_deref()
                .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded),
            false,
            &mut |k, item| {
                let v = tree.value(item)?;
                rows.push(serde_json::json!({
                    "key": String::from_utf8_lossy(k),
                    "value": String::from_utf8_lossy(&v),
                }));
                Ok(rows.len() < 100_000)
            },
        )
        .map_err(failure)?;
        Ok(rows)
    })
    .await;
    match rows {
        Ok(rows) => axum::Json(rows).into_response(),
        Err(f) => f.into_response(),
    }
}

pub(super) async fn kv_put(
    State(gw): State<Shared>,
    UrlPath(params): UrlPath<Vec<(String, String)>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    kv_change(gw, params, uri, headers, Some(body)).await
}

pub(super) async fn kv_delete(
    State(gw): State<Shared>,
    UrlPath(params): UrlPath<Vec<(String, String)>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    kv_change(gw, params, uri, headers, None).await
}

async fn kv_change(
    gw: Shared,
    params: Vec<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    value: Option<Bytes>,
) -> Response {
    if let Err(f) = gw.may_write(&headers) {
        return f.into_response();
    }
    let name = params.first().map(|p| p.1.clone()).unwrap_or_default();
    let key = match kv_key(&uri) {
        Ok(k) => k,
        Err(f) => return f.into_response(),
    };
    let bucket = gw.bucket();
    let gw_kv = gw.clone();
    let done = blocking(move || {
        let kv = Kv::open(bucket, &name).map_err(failure)?;
        let mut txn = kv.begin().map_err(failure)?;
        match &value {
            Some(v) => txn.put(&key, v).map_err(failure)?,
            None => {
                if txn.get(&key).map_err(failure)?.is_none() {
                    return Err(Failure(StatusCode::NOT_FOUND, "no such key".into()));
                }
                txn.delete(&key).map_err(failure)?
            }
        }
        let committed = gw_kv.timed_commit(|| txn.commit("gateway"));
        committed.map_err(failure)?;
        Ok(())
    })
    .await;
    match done {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(f) => f.into_response(),
    }
}

pub(super) async fn sql_post(
    State(gw): State<Shared>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    gw.count("sql");
    let Ok(query) = String::from_utf8(body.to_vec()) else {
        return Failure(StatusCode::BAD_REQUEST, "the query is not UTF-8".into()).into_response();
    };
    // Read-only unless the token allows writes.
    let write = !gw.read_only && gw.has_token(&headers);
    let bucket = gw.bucket();
    let gw_sql = gw.clone();
    let result = blocking(move || {
        let db = if write {
            hydra_sql::Database::open(&bucket, &name)
        } else {
            let root = bucket
                .get_ref(
                    &hydra_sql::ref_name(&name)
                        .map_err(|e| Failure(StatusCode::BAD_REQUEST, e.to_string()))?,
                )
                .map_err(failure)?;
            hydra_sql::Database::open_at(&bucket, root)
        }
        .map_err(|e| Failure(StatusCode::BAD_REQUEST, e.to_string()))?;
        let mut sets = Vec::new();
        let ran = db.run_script(&query, &mut |set| sets.push(set));
        if write {
            gw_sql.forget_refs();
        }
        ran.map_err(|e| Failure(StatusCode::BAD_REQUEST, e.to_string()))?;
        Ok(sets)
    })
    .await;
    match result {
        Ok(sets) => {
            let json: Vec<serde_json::Value> = sets
                .into_iter()
                .map(|set| {
                    let rows: Vec<serde_json::Value> = set
                        .rows
                        .iter()
                        .map(|row| {
                            serde_json::Value::Object(
                                set.columns
                                    .iter()
                                    .zip(row)
                                    .map(|(c, v)| (c.clone(), sql_json(v)))
                                    .collect(),
                            )
                        })
                        .collect();
                    serde_json::json!({"columns": set.columns, "rows": rows})
                })
                .collect();
            axum::Json(json).into_response()
        }
        Err(f) => f.into_response(),
    }
}

/// A SQLite value as JSON (blobs as hex strings).
fn sql_json(v: &hydra_sql::rusqlite::types::Value) -> serde_json::Value {
    use hydra_sql::rusqlite::types::Value;
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => (*i).into(),
        Value::Real(r) => {
            serde_json::Number::from_f64(*r).map_or(serde_json::Value::Null, Into::into)
        }
        Value::Text(t) => t.clone().into(),
        Value::Blob(b) => b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
            .into(),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct EventsQuery {
    #[serde(rename = "ref")]
    pattern: Option<String>,
}

/// Server-Sent Events of ref updates matching `?ref=PATTERN`, from after
/// `Last-Event-ID` (or from now).
pub(super) async fn events(
    State(gw): State<Shared>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    gw.count("events");
    let pattern = q.pattern.unwrap_or_else(|| "*".into());
    let bucket = gw.bucket();
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let start = match resume {
        Some(id) => id,
        None => {
            let b = bucket.clone();
            match blocking(move || b.log(None, 1).map_err(failure)).await {
                Ok(latest) => latest.first().map_or(0, |e| e.id),
                Err(f) => return f.into_response(),
            }
        }
    };
    let stream = futures_util::stream::unfold(
        (bucket, start, std::collections::VecDeque::new()),
        move |(bucket, mut after, mut queue)| {
            let pattern = pattern.clone();
            async move {
                loop {
                    if let Some(e) = queue.pop_front() {
                        return Some((
                            Ok::<Event, std::convert::Infallible>(e),
                            (bucket, after, queue),
                        ));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    let b = bucket.clone();
                    let newer = tokio::task::spawn_blocking(move || b.log(None, 10_000)).await;
                    let Ok(Ok(entries)) = newer else { continue };
                    let since = after;
                    for entry in entries.into_iter().rev().filter(|e| e.id > since) {
                        after = entry.id;
                        if !http::glob_match(&pattern, entry.name.as_str()) {
                            continue;
                        }
                        let data = serde_json::json!({
                            "ref": entry.name.as_str(),
                            "old": entry.old.map(|c| c.to_string()),
                            "new": entry.new.map(|c| c.to_string()),
                            "time_ns": entry.time_ns,
                            "author": entry.author,
                            "message": entry.message,
                        });
                        queue.push_back(
                            Event::default()
                                .id(entry.id.to_string())
                                .event("ref")
                                .data(data.to_string()),
                        );
                    }
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
