//! `/manage/v1` backups (admin only: an archive holds the tenant's keys and secrets in the clear).
//! `GET /tenants/{tenant}/backup` streams the archive as it is written; `POST /restore?as=NAME`
//! takes one as the body (spooled to a temporary file as it arrives, so memory stays constant).

use crate::manage::ManageError;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt as _;
use serde::Deserialize;
use std::io::Write as _;

/// `GET /tenants/{tenant}/backup`.
pub async fn download(State(s): State<AppState>, Path(tenant): Path<String>) -> Result<Response, ManageError> {
    let record = s
        .storage
        .tenant(&tenant)
        .await
        .map_err(|e| ManageError::Internal(e.to_string()))?
        .ok_or_else(|| ManageError::NotFound(format!("Tenant '{tenant}'")))?;
    let name = record.record.name.clone();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let app = s.clone();
    let task_name = name.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::backup::write(&app, &task_name, tx).await {
            // The body ends with an error: the client sees a broken transfer, never a whole archive.
            tracing::warn!(tenant.name = %task_name, error.cause = %e, "A backup download failed");
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}-{stamp}.roostbak\"")),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The spooled upload, removed when the restore ends.
struct Spool(std::path::PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[derive(Deserialize)]
pub struct RestoreQuery {
    #[serde(rename = "as")]
    as_name: Option<String>,
}

/// `POST /restore[?as=NAME]` with an archive as the body: the restored tenant's counts.
pub async fn upload(State(s): State<AppState>, Query(q): Query<RestoreQuery>, body: Body) -> Result<Json<crate::backup::Summary>, ManageError> {
    let dir = s.storage.data_dir().join("tmp");
    std::fs::create_dir_all(&dir).map_err(|e| ManageError::Internal(e.to_string()))?;
    let path = dir.join(format!("restore-{}.roostbak", uuid::Uuid::new_v4().simple()));
    let spool = Spool(path);
    let mut file = std::io::BufWriter::new(
        std::fs::File::options().read(true).write(true).create_new(true).open(&spool.0).map_err(|e| ManageError::Internal(e.to_string()))?,
    );
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ManageError::BadInput(format!("reading the archive: {e}")))?;
        file.write_all(&chunk).map_err(|e| ManageError::Internal(e.to_string()))?;
    }
    let mut file = file.into_inner().map_err(|e| ManageError::Internal(e.to_string()))?;
    std::io::Seek::rewind(&mut file).map_err(|e| ManageError::Internal(e.to_string()))?;
    let summary = crate::backup::restore(&s, Box::new(file), q.as_name.as_deref()).await.map_err(|e| {
        let message = format!("{e:#}");
        if message.contains("already exists") {
            ManageError::Conflict(q.as_name.clone().map_or_else(|| "The archive's tenant".to_string(), |n| format!("Tenant '{n}'")))
        } else {
            ManageError::BadInput(message)
        }
    })?;
    tracing::info!(tenant.name = %summary.tenant, rows = summary.rows, "Restored a tenant from a backup");
    Ok(Json(summary))
}
