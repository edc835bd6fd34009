//! Routes and guards. Bound to loopback by default; any other address needs a token, which a
//! browser presents once (`/login?token=…`, kept in an HttpOnly, SameSite=Strict cookie) or a
//! script as `Authorization: Bearer …`. Every answer forbids framing, sniffing, referrers and
//! any script or remote resource (Content-Security-Policy).

use crate::html::page;
use crate::pages;
use crate::source::OrbSource;
use anyhow::{Result, bail};
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use orbiter::machine::MachineKey;
use std::net::SocketAddr;
use std::sync::Arc;

pub struct Options {
    pub listen: SocketAddr,
    /// Required of every request when set; must be set for a non-loopback address.
    pub token: Option<String>,
}

mod edit;

pub(crate) struct App {
    orbs: Vec<Arc<OrbSource>>,
    token: Option<String>,
    /// Every form carries it; a request from another site cannot read it (see `edit`).
    csrf: String,
}

pub(crate) type Shared = Arc<App>;

impl Options {
    /// Refuses an address other machines reach without a token.
    pub fn check(&self) -> Result<()> {
        if !self.listen.ip().is_loopback() && self.token.is_none() {
            bail!(
                "{} is reachable from other machines: give a token (--token-file FILE) or listen on 127.0.0.1",
                self.listen
            );
        }
        Ok(())
    }
}

/// Serves until the process ends.
pub fn serve(orbs: Vec<OrbSource>, opts: Options) -> Result<()> {
    opts.check()?;
    let listener = std::net::TcpListener::bind(opts.listen)
        .map_err(|e| anyhow::anyhow!("listen on {}: {e}", opts.listen))?;
    serve_on(listener, orbs, opts.token)
}

/// Serves on a bound listener (tests bind port 0).
pub fn serve_on(
    listener: std::net::TcpListener,
    orbs: Vec<OrbSource>,
    token: Option<String>,
) -> Result<()> {
    listener.set_nonblocking(true)?;
    let app = Arc::new(App {
        orbs: orbs.into_iter().map(Arc::new).collect(),
        token,
        csrf: edit::new_csrf_token()?,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        axum::serve(listener, router(app)).await?;
        Ok(())
    })
}

fn router(app: Shared) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/login", get(login))
        .route("/orbs/{orb}/machines", get(machines))
        .route("/orbs/{orb}/machines/{key}", get(machine))
        .route("/orbs/{orb}/machines/{key}/{verb}", post(edit::flag))
        .route("/orbs/{orb}/scale", post(edit::scale))
        .route("/orbs/{orb}/edit", get(edit::form).post(edit::save))
        .route("/orbs/{orb}/history", get(history))
        .route("/orbs/{orb}/clusters", get(clusters))
        .route("/orbs/{orb}/commits/{id}", get(commit))
        .fallback(|| async { not_found("no such page") })
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Token check (when configured) and the security headers of every answer.
async fn guard(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let allowed = match &app.token {
        None => true,
        Some(t) => req.uri().path() == "/login" || presented(req.headers(), t),
    };
    let mut res = if allowed {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            html(page(
                "Token required",
                None,
                "<p>Open <code>/login?token=…</code> with the token Mission Control was started with.</p>",
            )),
        )
            .into_response()
    };
    let h = res.headers_mut();
    for (k, v) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    res
}

/// The token as a bearer header or the login cookie, compared in constant time.
fn presented(headers: &HeaderMap, token: &str) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("mc_token="));
    [bearer, cookie]
        .into_iter()
        .flatten()
        .any(|given| same(given.as_bytes(), token.as_bytes()))
}

pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(serde::Deserialize)]
struct Login {
    token: String,
}

async fn login(State(app): State<Shared>, Query(l): Query<Login>) -> Response {
    match &app.token {
        Some(t) if same(l.token.as_bytes(), t.as_bytes()) => {
            let mut res = Redirect::to("/").into_response();
            // The value is the token itself: it stays in this browser, never in a page.
            if let Ok(v) = HeaderValue::from_str(&format!(
                "mc_token={}; HttpOnly; SameSite=Strict; Path=/",
                l.token
            )) {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            res
        }
        Some(_) => (
            StatusCode::UNAUTHORIZED,
            html(page("Wrong token", None, "")),
        )
            .into_response(),
        None => Redirect::to("/").into_response(),
    }
}

pub(crate) fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

pub(crate) fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        html(page(
            "Not found",
            None,
            &format!("<p>{}</p>", crate::html::esc(what)),
        )),
    )
        .into_response()
}

pub(crate) fn failed(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_GATEWAY,
        html(page(
            "Cannot read the Orb",
            None,
            &format!("<p class=\"bad\">{}</p>", crate::html::esc(&e.to_string())),
        )),
    )
        .into_response()
}

pub(crate) fn orb(app: &App, name: &str) -> Option<Arc<OrbSource>> {
    app.orbs.iter().find(|o| o.name() == name).cloned()
}

/// Runs `f` off the async workers (it runs git).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

async fn overview(State(app): State<Shared>) -> Response {
    let orbs = app.orbs.clone();
    let views = blocking(move || {
        orbs.iter()
            .map(|o| (o.name().to_owned(), o.view().map_err(|e| e.to_string())))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    html(page("Orbs", None, &pages::overview::render(&views)))
}

async fn machines(
    State(app): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<pages::machines::Query>,
) -> Response {
    let Some(o) = orb(&app, &name) else {
        return not_found("no such Orb");
    };
    match blocking(move || o.view()).await {
        Some(Ok(v)) => html(page(
            &format!("{name}: machines"),
            Some(&name),
            &pages::machines::render(&v, &q, &app.csrf),
        )),
        Some(Err(e)) => failed(e),
        None => failed("the request was cancelled"),
    }
}

async fn machine(State(app): State<Shared>, Path((name, key)): Path<(String, String)>) -> Response {
    let Some(o) = orb(&app, &name) else {
        return not_found("no such Orb");
    };
    let Ok(key) = MachineKey::parse(&key) else {
        return not_found("not a machine id (provider.machine)");
    };
    let k = key.clone();
    let got = blocking(move || -> anyhow::Result<_> {
        let v = o.view()?;
        let d = o.file(&orbiter::state::node_desired_path(&k))?;
        let c = o.file(&orbiter::state::node_current_path(&k))?;
        Ok((v, d, c))
    })
    .await;
    match got {
        Some(Ok((v, d, c))) => html(page(
            &format!("{name}: {key}"),
            Some(&name),
            &pages::machine::render(&v, &key, d.as_deref(), c.as_deref(), &app.csrf),
        )),
        Some(Err(e)) => failed(e),
        None => failed("the request was cancelled"),
    }
}

async fn history(
    State(app): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<pages::history::Query>,
) -> Response {
    let Some(o) = orb(&app, &name) else {
        return not_found("no such Orb");
    };
    match blocking(move || o.view()).await {
        Some(Ok(v)) => html(page(
            &format!("{name}: history"),
            Some(&name),
            &pages::history::render(&v, &q),
        )),
        Some(Err(e)) => failed(e),
        None => failed("the request was cancelled"),
    }
}

async fn commit(State(app): State<Shared>, Path((name, id)): Path<(String, String)>) -> Response {
    let Some(o) = orb(&app, &name) else {
        return not_found("no such Orb");
    };
    let i = id.clone();
    let got = blocking(move || -> anyhow::Result<_> {
        let v = o.view()?;
        let diff = o.commit_diff(&i)?;
        Ok((v, diff))
    })
    .await;
    match got {
        Some(Ok((v, diff))) => {
            let c = v.log.iter().find(|c| c.id == id);
            html(page(
                &format!("{name}: commit {}", id.chars().take(12).collect::<String>()),
                Some(&name),
                &pages::commit::render(c, &diff),
            ))
        }
        Some(Err(e)) => not_found(&e.to_string()),
        None => failed("the request was cancelled"),
    }
}

async fn clusters(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    let Some(o) = orb(&app, &name) else {
        return not_found("no such Orb");
    };
    match blocking(move || o.view()).await {
        Some(Ok(v)) => html(page(
            &format!("{name}: clusters"),
            Some(&name),
            &pages::clusters::render(&v),
        )),
        Some(Err(e)) => failed(e),
        None => failed("the request was cancelled"),
    }
}
