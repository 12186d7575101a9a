//! Routing: path and method to handler, auth on /assets, and per-route metrics.

use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{ALLOW, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, StatusCode};

use crate::app::App;
use crate::handlers::{get, health, list, submit, ui, validate};
use crate::metrics as m;
use crate::response::{self, Resp};

/// Where a request goes.
enum Route<'a> {
    Healthz,
    Readyz,
    Metrics,
    /// `/assets/image`: POST submits, GET lists.
    Images,
    /// `/assets`: GET lists.
    Assets,
    Job(&'a str),
    /// `/validate`: POST validates the body.
    Validate,
    /// The dashboard, its JSON and `/openapi.json` ([`ui::Route`]).
    Operator(ui::Route<'a>),
    NotFound,
}

impl Route<'_> {
    fn parse(path: &str) -> Route<'_> {
        // A trailing slash names the same resource.
        let path = match path.strip_suffix('/') {
            Some(stripped) if !stripped.is_empty() => stripped,
            _ => path,
        };
        match path {
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/metrics" => Route::Metrics,
            "/assets/image" => Route::Images,
            "/assets" => Route::Assets,
            "/validate" => Route::Validate,
            _ => match path.strip_prefix("/assets/image/") {
                Some(id) if !id.contains('/') => Route::Job(id),
                _ => ui::Route::parse(path).map_or(Route::NotFound, Route::Operator),
            },
        }
    }

    /// The metric label: the route template, never the raw path.
    fn label(&self) -> &'static str {
        match self {
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::Images => "/assets/image",
            Route::Assets => "/assets",
            Route::Job(_) => "/assets/image/{id}",
            Route::Validate => "/validate",
            Route::Operator(route) => route.label(),
            Route::NotFound => "other",
        }
    }

    fn allowed(&self) -> &'static str {
        match self {
            Route::Images => "GET, POST",
            Route::Job(_) => "GET, DELETE",
            Route::Validate => "POST",
            _ => "GET",
        }
    }
}

/// Answers one request; never fails.
pub async fn handle(app: &App, request: Request<Incoming>) -> Resp {
    let started = Instant::now();
    let path = request.uri().path().to_owned();
    let route = Route::parse(&path);
    let label = route.label();
    let response = dispatch(app, route, request).await;
    let status = response.status();
    metrics::counter!(m::REQUESTS, "route" => label, "status" => status.as_str().to_owned())
        .increment(1);
    metrics::histogram!(m::REQUEST_SECONDS, "route" => label, "status_class" => m::status_class(status))
        .record(started.elapsed().as_secs_f64());
    response
}

/// Answers one request on a connection past the connection cap: health endpoints only.
pub async fn handle_saturated(app: &App, request: Request<Incoming>) -> Resp {
    let path = request.uri().path().to_owned();
    match Route::parse(&path) {
        Route::Healthz | Route::Readyz | Route::Metrics => handle(app, request).await,
        _ => {
            let mut response = response::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "connection",
                "Too many connections; retry later.",
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(1u32));
            response
        }
    }
}

async fn dispatch(app: &App, route: Route<'_>, request: Request<Incoming>) -> Resp {
    let method = request.method().clone();
    match (&route, &method) {
        (Route::NotFound, _) => {
            return response::error(StatusCode::NOT_FOUND, "path", "No such resource.");
        }
        (Route::Healthz, &Method::GET) => return health::healthz(),
        (Route::Readyz, &Method::GET) => return health::readyz(app),
        (Route::Metrics, &Method::GET) => return health::metrics(app).await,
        _ if !app.serves_api => {
            return response::error(StatusCode::NOT_FOUND, "path", "No such resource.");
        }
        (Route::Operator(route), _) => return ui::dispatch(app, *route, request).await,
        (Route::Images, &Method::GET | &Method::POST) => {}
        (Route::Job(_), &Method::GET | &Method::DELETE) => {}
        (Route::Assets, &Method::GET) => {}
        (Route::Validate, &Method::POST) => {}
        _ => return method_not_allowed(&route, &method),
    }
    let tenant = match crate::auth::identify(&app.tenants.current(), request.headers()) {
        Ok(tenant) => tenant,
        Err(refusal) => return *refusal,
    };
    let query = request.uri().query();
    let name = tenant.name.as_str();
    match route {
        Route::Images if method == Method::POST => submit::submit(app, &tenant, request).await,
        Route::Images | Route::Assets => list::list(app, name, query).await,
        Route::Job(id) if method == Method::DELETE => get::cancel(app, name, id).await,
        Route::Validate => validate::validate(app, &tenant, request).await,
        Route::Job(id) => get::get(app, name, id).await,
        _ => response::error(StatusCode::NOT_FOUND, "path", "No such resource."),
    }
}

fn method_not_allowed(route: &Route<'_>, method: &Method) -> Resp {
    let allowed = route.allowed();
    let mut response = response::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method",
        format!(
            "Method {} not allowed; allowed: {allowed}.",
            method.as_str().chars().take(20).collect::<String>()
        ),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allowed));
    response
}
