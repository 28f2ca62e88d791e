//! The pages (`web/`): built into the binary, so `sellcast serve` works from any directory, or
//! read from a directory given with `--web-dir` while developing them.
//!
//! Routes: `/host/{room}`, `/watch/{room}` and `/embed/{room}` answer `host.html`, `watch.html`
//! and `embed.html`; `/preview/{room}` answers `watch.html` too, for the host console's viewer
//! preview (the one path the console's own origin may frame, see `security_headers`); `/embed.js` is the embeddable player's element (`<sellcast-player>`);
//! `/static/{file}` answers any file of `web/`. Embedded files carry an `ETag` (their SHA-256)
//! and `Cache-Control: no-cache`, so a browser revalidates and a new binary's pages are never
//! hidden behind a stale cache.
//!
//! Edits to a file of `web/` rebuild the binary with it; a file added to `web/` is embedded at
//! the next build of this crate (the derive lists the folder when it runs).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rust_embed::RustEmbed;
use thiserror::Error;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

/// `web/` as it was when the binary was built.
#[derive(RustEmbed)]
#[folder = "../../web/"]
struct Embedded;

/// The two pages every deployment needs; a page directory without them is refused at startup.
const REQUIRED: [&str; 2] = ["host.html", "watch.html"];

/// Where the pages come from.
#[derive(Debug, Clone)]
pub enum Pages {
    /// Built into the binary.
    Embedded,
    /// A directory on disk (`--web-dir`), read on every request.
    Dir(PathBuf),
}

#[derive(Debug, Error)]
pub enum PagesError {
    #[error("--web-dir {0}: no such directory (leave --web-dir out to serve the pages built into the binary)")]
    NoDir(PathBuf),
    #[error("--web-dir {dir}: {file} is missing; it must hold the pages of web/ (host.html, watch.html and their modules)")]
    Missing { dir: PathBuf, file: &'static str },
}

impl Pages {
    /// The directory if one is given (checked now, so a wrong path fails at startup and not
    /// at a viewer's first request), else the embedded pages.
    pub fn new(dir: Option<&Path>) -> Result<Pages, PagesError> {
        let Some(dir) = dir else {
            return Ok(Pages::Embedded);
        };
        if !dir.is_dir() {
            return Err(PagesError::NoDir(dir.to_path_buf()));
        }
        if let Some(file) = REQUIRED.into_iter().find(|f| !dir.join(f).is_file()) {
            return Err(PagesError::Missing { dir: dir.to_path_buf(), file });
        }
        Ok(Pages::Dir(dir.to_path_buf()))
    }

    /// Where a log line should say the pages come from.
    pub fn describe(&self) -> String {
        match self {
            Pages::Embedded => "built in".into(),
            Pages::Dir(dir) => dir.display().to_string(),
        }
    }
}

pub fn routes(pages: Pages) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let pages = Arc::new(pages);
    let host = warp::path!("host" / String).and(warp::get()).map(|_room: String| "host.html".to_string());
    let watch = warp::path!("watch" / String).and(warp::get()).map(|_room: String| "watch.html".to_string());
    let preview = warp::path!("preview" / String).and(warp::get()).map(|_room: String| "watch.html".to_string());
    // The embeddable player: a page to put in an iframe, and the script of its element.
    let embed = warp::path!("embed" / String).and(warp::get()).map(|_room: String| "embed.html".to_string());
    let embed_js = warp::path!("embed.js").and(warp::get()).map(|| "embed.js".to_string());
    let asset = warp::path("static")
        .and(warp::get())
        .and(warp::path::tail())
        .map(|tail: warp::path::Tail| tail.as_str().to_string());
    host.or(watch)
        .unify()
        .or(preview)
        .unify()
        .or(embed)
        .unify()
        .or(embed_js)
        .unify()
        .or(asset)
        .unify()
        .and(warp::header::optional::<String>("if-none-match"))
        .and(warp::any().map(move || pages.clone()))
        .and_then(|file: String, etag: Option<String>, pages: Arc<Pages>| async move {
            match pages.as_ref() {
                Pages::Embedded => embedded(&file, etag.as_deref()).ok_or_else(warp::reject::not_found),
                Pages::Dir(dir) => from_dir(dir, &file).await,
            }
        })
}

fn embedded(file: &str, if_none_match: Option<&str>) -> Option<Response> {
    let found = Embedded::get(file)?;
    let hash: String = found.metadata.sha256_hash().iter().map(|b| format!("{b:02x}")).collect();
    let etag = format!("\"{hash}\"");
    let mut response = if if_none_match.is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag)) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = Response::new(found.data.into_owned().into());
        if let Ok(mime) = HeaderValue::from_str(found.metadata.mimetype()) {
            r.headers_mut().insert(header::CONTENT_TYPE, mime);
        }
        r
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    Some(response)
}

/// A file of the page directory; `..` and absolute paths never leave it.
async fn from_dir(dir: &Path, file: &str) -> Result<Response, Rejection> {
    let relative = Path::new(file);
    if relative.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return Err(warp::reject::not_found());
    }
    let path = dir.join(relative);
    let Ok(bytes) = tokio::fs::read(&path).await else {
        return Err(warp::reject::not_found());
    };
    let mime = mime_guess::from_path(&path).first_or_octet_stream();
    let mut response = Response::new(bytes.into());
    if let Ok(value) = HeaderValue::from_str(mime.as_ref()) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_holds_every_page_of_web() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
        for entry in std::fs::read_dir(&dir).expect("web/ in the repository") {
            let name = entry.expect("a directory entry").file_name().to_string_lossy().into_owned();
            let on_disk = std::fs::read(dir.join(&name)).expect("readable");
            let built_in = Embedded::get(&name).unwrap_or_else(|| panic!("{name} is not embedded"));
            assert_eq!(built_in.data.as_ref(), on_disk.as_slice(), "{name}");
        }
    }

    #[test]
    fn a_missing_or_incomplete_page_directory_is_refused() {
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(matches!(Pages::new(Some(&empty.path().join("nope"))), Err(PagesError::NoDir(_))));
        assert!(matches!(Pages::new(Some(empty.path())), Err(PagesError::Missing { file: "host.html", .. })));
        assert!(matches!(Pages::new(None), Ok(Pages::Embedded)));
    }

    #[test]
    fn an_unchanged_embedded_page_is_answered_not_modified() {
        let first = embedded("room.js", None).expect("room.js");
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers().get(header::ETAG).and_then(|v| v.to_str().ok()).expect("an ETag").to_string();
        let again = embedded("room.js", Some(&etag)).expect("room.js");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(embedded("../Cargo.toml", None).is_none());
    }
}
