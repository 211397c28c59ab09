//! `/ipfs/CID[/PATH]`: blocks, CARs and files by CID, as the IPFS
//! trustless-gateway conventions name them.

use super::*;

#[derive(serde::Deserialize)]
pub(super) struct IpfsQuery {
    format: Option<String>,
    #[serde(rename = "dag-scope")]
    dag_scope: Option<String>,
    #[serde(rename = "car-version")]
    car_version: Option<String>,
    #[serde(rename = "car-order")]
    car_order: Option<String>,
    #[serde(rename = "car-dups")]
    car_dups: Option<String>,
    #[serde(rename = "entity-bytes")]
    entity_bytes: Option<String>,
}

impl IpfsQuery {
    /// The CAR parameters of the trustless-gateway conventions this
    /// gateway answers (from the query, else the Accept header's).
    fn car_request(&self, accept: &str) -> Result<(car::Scope, Option<car::EntityBytes>), Failure> {
        let param = |name: &str| {
            accept
                .split(';')
                .filter_map(|p| p.trim().split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.trim().to_string())
        };
        let bad = |m: String| Err(Failure(StatusCode::BAD_REQUEST, m));
        let version = self.car_version.clone().or_else(|| param("version"));
        if version.as_deref().is_some_and(|v| v != "1") {
            return bad("only CAR version 1 is served".into());
        }
        let order = self.car_order.clone().or_else(|| param("order"));
        if order.as_deref().is_some_and(|o| o != "dfs" && o != "unk") {
            return bad("blocks come in dfs order".into());
        }
        let dups = self.car_dups.clone().or_else(|| param("dups"));
        if dups.as_deref().is_some_and(|d| d != "n") {
            return bad("each block is sent once (dups=n)".into());
        }
        let scope = match self.dag_scope.as_deref() {
            None => car::Scope::All,
            Some(text) => match car::Scope::parse(text) {
                Some(scope) => scope,
                None => return bad(format!("unknown dag-scope {text}")),
            },
        };
        let bytes = match self.entity_bytes.as_deref() {
            None => None,
            Some(text) => match car::EntityBytes::parse(text) {
                Some(range) => Some(range),
                None => return bad(format!("entity-bytes {text} is not FROM:TO")),
            },
        };
        Ok((scope, bytes))
    }
}

pub(super) async fn ipfs_get(
    State(gw): State<Shared>,
    UrlPath(params): UrlPath<Vec<(String, String)>>,
    Query(q): Query<IpfsQuery>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    gw.count("ipfs");
    let Some(cid) = params.first().and_then(|p| p.1.parse::<Cid>().ok()) else {
        return Failure(StatusCode::BAD_REQUEST, "not a CID".into()).into_response();
    };
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = q.format.clone().or_else(|| {
        if accept.contains("application/vnd.ipld.raw") {
            Some("raw".into())
        } else if accept.contains("application/vnd.ipld.car") {
            Some("car".into())
        } else {
            None
        }
    });
    let path = match checked_path(&uri, 2) {
        Ok(p) => p,
        Err(f) => return f.into_response(),
    };
    let bucket = gw.bucket();
    match format.as_deref() {
        Some("raw") => {
            if path != b"/" {
                return Failure(StatusCode::BAD_REQUEST, "format=raw takes no path".into())
                    .into_response();
            }
            let headers = [
                (header::CONTENT_TYPE, "application/vnd.ipld.raw".to_string()),
                (header::ETAG, format!("\"{cid}.raw\"")),
                (
                    header::CACHE_CONTROL,
                    "public, max-age=29030400, immutable".to_string(),
                ),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{cid}.bin\""),
                ),
            ];
            block_response(bucket, cid, headers).await
        }
        Some("car") => {
            let (scope, bytes) = match q.car_request(accept) {
                Ok(request) => request,
                Err(f) => return f.into_response(),
            };
            let plan = blocking({
                let bucket = bucket.clone();
                let path = path.clone();
                move || {
                    if !bucket.has(&cid).map_err(failure)? {
                        return Err(Failure(StatusCode::NOT_FOUND, format!("no block {cid}")));
                    }
                    car::plan(&bucket, &cid, &path, scope, bytes).map_err(failure)
                }
            })
            .await;
            let plan = match plan {
                Ok(plan) => plan,
                Err(f) => return f.into_response(),
            };
            let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
            tokio::task::spawn_blocking(move || {
                let mut out = ChannelWriter {
                    tx: tx.clone(),
                    buf: Vec::new(),
                };
                let result = car::write(&bucket, &cid, &plan, &mut out);
                let _ = out.flush_piece();
                if let Err(e) = result {
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                }
            });
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|i| (i, rx))
            });
            let scope_name = scope.name();
            Response::builder()
                .header(
                    header::CONTENT_TYPE,
                    "application/vnd.ipld.car; version=1; order=dfs; dups=n",
                )
                .header(header::ETAG, {
                    // The path and range named by a digest: they may hold
                    // bytes a header cannot.
                    let mut named = path.clone();
                    named.extend_from_slice(q.entity_bytes.as_deref().unwrap_or("").as_bytes());
                    let digest = Cid::hash(Codec::RAW, &named).to_string();
                    let tail = &digest[digest.len().saturating_sub(16)..];
                    format!("\"{cid}.car.{scope_name}.{tail}\"")
                })
                .header(header::CACHE_CONTROL, "public, max-age=29030400, immutable")
                .header("x-ipfs-roots", cid.to_string())
                .header("x-content-type-options", "nosniff")
                .header(
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{cid}.car\""),
                )
                .body(Body::from_stream(stream))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        Some(other) => {
            Failure(StatusCode::BAD_REQUEST, format!("unknown format {other}")).into_response()
        }
        None => {
            // A filesystem root: its files; any other block: its bytes.
            if cid.codec() == Codec::DAG_CBOR {
                let gw2 = gw.clone();
                let is_fs = tokio::task::spawn_blocking(move || gw2.view(cid).is_ok())
                    .await
                    .unwrap_or(false);
                if is_fs {
                    let gw2 = gw.clone();
                    return serve_path(move || gw2.view(cid), path, method, headers, uri, None)
                        .await;
                }
            }
            if path != b"/" {
                return Failure(StatusCode::NOT_FOUND, "not a filesystem root".into())
                    .into_response();
            }
            let headers = [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (header::ETAG, format!("\"{cid}\"")),
            ];
            block_response(bucket, cid, headers).await
        }
    }
}

/// Block `cid` with `headers`, read off the async thread; 404 when absent.
async fn block_response<const N: usize>(
    bucket: Bucket,
    cid: Cid,
    headers: [(header::HeaderName, String); N],
) -> Response {
    match blocking(move || bucket.get(&cid).map_err(failure)).await {
        Ok(Some(data)) => (headers, data).into_response(),
        Ok(None) => Failure(StatusCode::NOT_FOUND, format!("no block {cid}")).into_response(),
        Err(f) => f.into_response(),
    }
}

/// A `Write` that hands 1 MiB pieces to a response body.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn flush_piece(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(piece))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.flush_piece()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
