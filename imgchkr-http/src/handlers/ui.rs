//! The operator's routes: the dashboard page and its assets (`/ui`), the JSON it reads
//! (`/admin/*`, [`super::admin`]) and the API's description (`/openapi.json`,
//! [`super::openapi`]). Parsed here so the main router only hands them over.
//!
//! The page's assets are compiled into the binary (no CDN: it works on an air-gapped host)
//! and served with a strict Content-Security-Policy: scripts and styles from this origin only,
//! no inline code, no other host contacted.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue, X_CONTENT_TYPE_OPTIONS,
};
use hyper::{Method, Request, Response, StatusCode};

use crate::app::App;
use crate::handlers::{admin, openapi};
use crate::response::{self, Resp};

/// An operator route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/ui`: the dashboard page.
    Page,
    /// `/ui/<asset>`: its script or style sheet.
    Asset(&'static Asset),
    /// `/admin/dashboard`: the dashboard's figures.
    Dashboard,
    /// `/admin/jobs/<id>`: a job looked up across tenants.
    Job(&'a str),
    /// `/openapi.json`.
    OpenApi,
}

/// A file of the page.
#[derive(Debug, PartialEq, Eq)]
pub struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const PAGE: Asset = Asset {
    path: "/ui",
    content_type: "text/html; charset=utf-8",
    body: include_str!("../ui/index.html"),
};

/// The page's script and style sheet.
pub static ASSETS: [Asset; 2] = [
    Asset {
        path: "/ui/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../ui/app.js"),
    },
    Asset {
        path: "/ui/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../ui/app.css"),
    },
];

/// The size of the page and its assets, bytes (what a browser downloads, uncompressed).
pub fn page_bytes() -> usize {
    PAGE.body.len() + ASSETS.iter().map(|a| a.body.len()).sum::<usize>()
}

impl<'a> Route<'a> {
    /// The operator route of `path` (its trailing slash already stripped), if it is one.
    pub fn parse(path: &'a str) -> Option<Route<'a>> {
        match path {
            "/ui" => Some(Route::Page),
            "/admin/dashboard" => Some(Route::Dashboard),
            "/openapi.json" => Some(Route::OpenApi),
            _ => {
                if let Some(asset) = ASSETS.iter().find(|a| a.path == path) {
                    return Some(Route::Asset(asset));
                }
                match path.strip_prefix("/admin/jobs/") {
                    Some(id) if !id.is_empty() && !id.contains('/') => Some(Route::Job(id)),
                    _ => None,
                }
            }
        }
    }

    /// The metric label: the route template.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Page => "/ui",
            Route::Asset(_) => "/ui/{asset}",
            Route::Dashboard => "/admin/dashboard",
            Route::Job(_) => "/admin/jobs/{id}",
            Route::OpenApi => "/openapi.json",
        }
    }
}

/// Answers an operator route: GET only; the page and `/admin` behind the admin token.
pub async fn dispatch(app: &App, route: Route<'_>, request: Request<Incoming>) -> Resp {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = response::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method",
            format!(
                "Method {} not allowed; allowed: GET.",
                request
                    .method()
                    .as_str()
                    .chars()
                    .take(20)
                    .collect::<String>()
            ),
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    match route {
        // The description and the static assets hold nothing secret.
        Route::OpenApi => return openapi::document(),
        Route::Asset(asset) => return serve(asset),
        _ => {}
    }
    let tenants_authenticate = app.tenants.current().enabled();
    if let Err(refusal) = app.admin.check(request.headers(), tenants_authenticate) {
        return *refusal;
    }
    match route {
        Route::Page => serve(&PAGE),
        Route::Dashboard => admin::dashboard(app).await,
        Route::Job(id) => admin::find_job(app, id, request.uri().query()).await,
        Route::Asset(_) | Route::OpenApi => unreachable_route(),
    }
}

fn unreachable_route() -> Resp {
    response::error(StatusCode::NOT_FOUND, "path", "No such resource.")
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn serve(asset: &Asset) -> Resp {
    let mut response = Response::new(Full::new(Bytes::from_static(asset.body.as_bytes())));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    // The assets change with the binary: revalidate rather than cache stale code.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse() {
        assert_eq!(Route::parse("/ui"), Some(Route::Page));
        assert_eq!(Route::parse("/ui/app.js"), Some(Route::Asset(&ASSETS[0])));
        assert_eq!(Route::parse("/ui/nope.js"), None);
        assert_eq!(Route::parse("/admin/jobs/abc"), Some(Route::Job("abc")));
        assert_eq!(Route::parse("/admin/jobs/"), None);
        assert_eq!(Route::parse("/admin/jobs/a/b"), None);
        assert_eq!(Route::parse("/admin/dashboard"), Some(Route::Dashboard));
        assert_eq!(Route::parse("/openapi.json"), Some(Route::OpenApi));
    }

    #[test]
    fn the_page_stays_small() {
        // Everything a browser downloads for the page, before its JSON.
        assert!(page_bytes() < 32 * 1024, "{} bytes", page_bytes());
    }

    #[test]
    fn the_page_references_only_its_own_assets() {
        for asset in &ASSETS {
            assert!(PAGE.body.contains(asset.path), "{} not linked", asset.path);
        }
        for body in [PAGE.body, ASSETS[0].body, ASSETS[1].body] {
            // The SVG namespace is a name, not a request.
            let body = body.replace("http://www.w3.org/2000/svg", "");
            assert!(!body.contains("http://") && !body.contains("https://"));
            assert!(!body.contains("//cdn") && !body.contains("src=\"//"));
        }
    }
}
