//! The web view: server-rendered HTML pages that only read. The forward schedule of change
//! ([`schedule`]), a change's page ([`change`]) and the KPIs ([`kpis`]), rendered with askama
//! templates (`templates/`, checked at compile time, HTML-escaped).
//!
//! Access: `Authorization: Bearer TOKEN` with the API token or the read-only token, or the
//! session cookie `POST /web/login` sets ([`session`]: signed with the token, never holding
//! it, ending after 12 hours, when the token changes, or at `POST /web/logout`). Without any
//! token configured the pages are off (503), like `/api/*`.
//!
//! Every response carries a Content-Security-Policy that allows no script at all, and nothing
//! on a page can change state: the only forms that post are signing in and signing out.

mod change;
mod kpis;
mod schedule;
pub mod session;

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use crate::http::{AppState, bearer};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = session::COOKIE;
/// What every page answers with: no script, styles inline only, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// The largest login form body.
const LOGIN_BODY_LIMIT: usize = 4 * 1024;

/// The pages, mounted into [`crate::http::router`].
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/web/schedule") }))
        .route("/web", get(|| async { Redirect::to("/web/schedule") }))
        .route("/web/icon.svg", get(icon))
        .route("/web/schedule", get(schedule::page))
        .route("/web/changes/{id}", get(change::page))
        .route("/web/kpis", get(kpis::page))
        .route("/web/kpis/chart.png", get(kpis::chart))
        .route(
            "/web/login",
            get(login_form)
                .post(login)
                .layer(DefaultBodyLimit::max(LOGIN_BODY_LIMIT)),
        )
        .route("/web/logout", axum::routing::post(logout))
        .layer(axum::middleware::map_response(page_headers))
}

/// Headers on every page: no script, no sniffing, no referrer, no caching.
async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The pages' icon (public: the sign-in page shows it too).
async fn icon() -> Response {
    const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\
        <rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#24292f\"/>\
        <path d=\"M4 8.5l2.5 2.5L12 5\" stroke=\"#f0883e\" stroke-width=\"2\" fill=\"none\"/></svg>";
    ([(header::CONTENT_TYPE, "image/svg+xml")], ICON).into_response()
}

/// Which page the navigation bar marks as the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Schedule,
    Change,
    Kpis,
    None,
}

impl Nav {
    pub fn is_schedule(&self) -> bool {
        *self == Nav::Schedule
    }

    pub fn is_kpis(&self) -> bool {
        *self == Nav::Kpis
    }

    /// Pages behind the sign-in show a sign-out button.
    pub fn signed_in(&self) -> bool {
        *self != Nav::None
    }
}

/// A page for a request that went wrong: status, heading and a sentence saying what to do.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    nav: Nav,
    heading: &'a str,
    message: &'a str,
}

/// An error page with `status`.
pub(crate) fn error_page(status: StatusCode, heading: &str, message: &str) -> Response {
    let page = ErrorPage {
        nav: Nav::None,
        heading,
        message,
    };
    (status, render(&page)).into_response()
}

/// A 400 page saying what was wrong with the request.
pub(crate) fn bad_request(message: &str) -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "That request is not right",
        message,
    )
}

/// A 500 page; the details go to the log.
pub(crate) fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "web page failed");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The page could not be built; the server log says why.",
    )
}

/// Renders a template, or a plain 500 when that fails (it only can when writing fails).
pub(crate) fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a web page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the server log",
            )
                .into_response()
        }
    }
}

/// The query of a page, or a sentence saying what is wrong with it (for [`bad_request`]).
pub(crate) fn query<T>(
    query: Result<axum::extract::Query<T>, QueryRejection>,
) -> Result<T, String> {
    query.map(|q| q.0).map_err(|e| {
        format!(
            "The address has a query this page does not understand ({}).",
            e.body_text()
        )
    })
}

/// A whole number from `min` to `max` given as `name=`, or `default` when absent.
pub(crate) fn number_param(
    name: &str,
    value: Option<&str>,
    default: u32,
    (min, max): (u32, u32),
) -> Result<u32, String> {
    match value.map(str::parse::<u32>) {
        None => Ok(default),
        Some(Ok(n)) if (min..=max).contains(&n) => Ok(n),
        Some(_) => Err(format!(
            "{name} must be a whole number from {min} to {max}, for example ?{name}={default}."
        )),
    }
}

/// A configured service's name given as `service=`, if any.
pub(crate) fn service_param(
    state: &AppState,
    value: Option<String>,
) -> Result<Option<String>, String> {
    let Some(name) = value.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let services = &state.workflow.config().org.services;
    if services.contains_key(&name) {
        return Ok(Some(name));
    }
    let known: Vec<&str> = services.keys().map(String::as_str).collect();
    let shown = if name.chars().count() > 64 || name.chars().any(char::is_control) {
        "that".to_string()
    } else {
        format!("`{name}`")
    };
    Err(format!(
        "There is no service {shown}; the services are: {}.",
        known.join(", ")
    ))
}

/// Proof that the request may read: a token, by bearer or session cookie. Rejected with the
/// login form (401), or 503 when no token is configured.
pub struct Reader;

impl FromRequestParts<AppState> for Reader {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if !state.tokens_configured() {
            return Err(off());
        }
        let by_bearer = bearer(&parts.headers).and_then(|t| state.access_of(t));
        let now = state.clock.now();
        let by_cookie = session::from_headers(&parts.headers)
            .and_then(|c| state.grant(|token| session::vouches(c, token, now)));
        if by_bearer.or(by_cookie).is_some() {
            return Ok(Reader);
        }
        let next = parts
            .uri
            .path_and_query()
            .map_or("/web/schedule", |p| p.as_str());
        let page = LoginPage {
            nav: Nav::None,
            message: Some("Sign in with the API token or the read-only token to see this page."),
            next: safe_next(Some(next)),
        };
        Err((StatusCode::UNAUTHORIZED, render(&page)).into_response())
    }
}

/// The 503 page when no token is configured.
fn off() -> Response {
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The web view is off",
        "No token is configured: set the environment variable named by api.token_env \
         (or api.read_token_env for a read-only token) and restart changebot.",
    )
}

/// Where to go after signing in: a page of the web view, else the schedule. Nothing that could
/// lead off this site (`//host`, `/\host`, schemes) passes.
fn safe_next(next: Option<&str>) -> String {
    next.filter(|n| n.starts_with("/web/") && n.len() <= 512)
        .filter(|n| !n.contains("//") && !n.contains('\\'))
        .filter(|n| n.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("/web/schedule")
        .to_string()
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    nav: Nav,
    message: Option<&'a str>,
    next: String,
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    next: Option<String>,
    /// Set by `POST /web/logout`'s redirect.
    signed_out: Option<String>,
}

async fn login_form(
    State(state): State<AppState>,
    q: Result<axum::extract::Query<LoginQuery>, QueryRejection>,
) -> Response {
    if !state.tokens_configured() {
        return off();
    }
    let (next, signed_out) = q
        .ok()
        .map_or((None, false), |q| (q.0.next, q.0.signed_out.is_some()));
    render(&LoginPage {
        nav: Nav::None,
        message: signed_out.then_some("You are signed out."),
        next: safe_next(next.as_deref()),
    })
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `POST /web/login`: a right token gets the session cookie and goes on; a wrong one gets the
/// form again (401).
async fn login(
    State(state): State<AppState>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    if !state.tokens_configured() {
        return off();
    }
    let Ok(Form(form)) = form else {
        return bad_request("The sign-in form was not sent as expected; reload it and try again.");
    };
    let next = safe_next(form.next.as_deref());
    let token = match state.access_of(&form.token) {
        Some(crate::http::Access::Full) => state.api_token.clone(),
        Some(crate::http::Access::Read) => state.read_token.clone(),
        None => None,
    };
    let Some(token) = token else {
        let page = LoginPage {
            nav: Nav::None,
            message: Some("That token is not right. Paste the API token or the read-only token."),
            next,
        };
        return (StatusCode::UNAUTHORIZED, render(&page)).into_response();
    };
    let value = session::issue(&token, state.clock.now());
    let cookie = session::set_cookie(&value, served_over_https(&state));
    let mut response = Redirect::to(&next).into_response();
    match HeaderValue::from_str(&cookie) {
        Ok(v) => {
            response.headers_mut().insert(header::SET_COOKIE, v);
            response
        }
        Err(e) => internal(e),
    }
}

/// `POST /web/logout`: the session cookie is cleared and the sign-in form shown.
async fn logout(State(state): State<AppState>) -> Response {
    let cookie = session::clear_cookie(served_over_https(&state));
    let mut response = Redirect::to("/web/login?signed_out=1").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// Whether the site is served over https (`public_url`), so cookies are marked `Secure`.
fn served_over_https(state: &AppState) -> bool {
    state
        .workflow
        .config()
        .server
        .public_url
        .starts_with("https://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pages_of_the_web_view_are_places_to_go_after_signing_in() {
        for good in [
            "/web/changes/CHG-1",
            "/web/kpis?days=7&service=payments-api",
        ] {
            assert_eq!(safe_next(Some(good)), good);
        }
        for bad in [
            "//evil.example/web/",
            "/web//evil.example",
            "/web/\\evil",
            "https://evil.example/web/",
            "/api/changes",
            "/web/x y",
        ] {
            assert_eq!(safe_next(Some(bad)), "/web/schedule", "{bad}");
        }
        assert_eq!(safe_next(None), "/web/schedule");
    }
}
