//! The edits: each a form posted with the page's CSRF token, from this site only, validated
//! before anything is committed, committed as the configured person, then a redirect to the
//! page that shows the result. A refused edit answers with the reason and commits nothing.

use super::{App, Shared, blocking, failed, html, not_found, orb, same};
use crate::edits::Edit;
use crate::html::{esc, page, url_part};
use crate::pages;
use anyhow::Result;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use orb_model::registry::MachineFlag;
use orb_model::{Id, ORBITER_YML};
use orbiter::machine::MachineKey;

/// 32 random bytes in hex, once per process.
pub(super) fn new_csrf_token() -> Result<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("random numbers: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The form's token matches, and the browser says the request comes from this site (a
/// browser sends `Sec-Fetch-Site` or `Origin` with every cross-site POST).
fn csrf_ok(app: &App, headers: &HeaderMap, token: &str) -> bool {
    let site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|s| s == "same-origin" || s == "none");
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|o| host.is_some_and(|h| o == format!("http://{h}")));
    site && origin && same(token.as_bytes(), app.csrf.as_bytes())
}

fn refused(status: StatusCode, orb: &str, why: &str) -> Response {
    (
        status,
        html(page(
            "Not committed",
            Some(orb),
            &format!("<p class=\"bad\">{}</p>", esc(why)),
        )),
    )
        .into_response()
}

/// Commits `edit` and redirects to `then`; a refused edit gets 422 and its reason.
async fn commit(app: &Shared, name: &str, edit: Edit, then: String) -> Response {
    let Some(o) = orb(app, name) else {
        return not_found("no such Orb");
    };
    match blocking(move || o.commit(&edit)).await {
        Some(Ok(_)) => Redirect::to(&then).into_response(),
        Some(Err(e)) => refused(StatusCode::UNPROCESSABLE_ENTITY, name, &e.to_string()),
        None => failed("the request was cancelled"),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct ScaleForm {
    csrf: String,
    provider: String,
    pool: String,
    nodes: u32,
}

pub(super) async fn scale(
    State(app): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(f): Form<ScaleForm>,
) -> Response {
    if !csrf_ok(&app, &headers, &f.csrf) {
        return refused(
            StatusCode::FORBIDDEN,
            &name,
            "the form's token is missing or wrong (reload the page)",
        );
    }
    let (Ok(provider), Ok(pool)) = (Id::parse(&f.provider), Id::parse(&f.pool)) else {
        return refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            &name,
            "not a provider and pool id",
        );
    };
    let then = format!("/orbs/{}/machines", url_part(&name));
    commit(
        &app,
        &name,
        Edit::Scale {
            provider,
            pool,
            nodes: f.nodes,
        },
        then,
    )
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct TokenForm {
    csrf: String,
}

pub(super) async fn flag(
    State(app): State<Shared>,
    Path((name, key, verb)): Path<(String, String, String)>,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Response {
    if !csrf_ok(&app, &headers, &f.csrf) {
        return refused(
            StatusCode::FORBIDDEN,
            &name,
            "the form's token is missing or wrong (reload the page)",
        );
    }
    let flag = match verb.as_str() {
        "reboot" => MachineFlag::Reboot,
        "replace" => MachineFlag::Replace,
        _ => return not_found("no such action"),
    };
    let Ok(machine) = MachineKey::parse(&key) else {
        return not_found("not a machine id (provider.machine)");
    };
    let then = format!("/orbs/{}/machines/{}", url_part(&name), url_part(&key));
    commit(&app, &name, Edit::Flag { machine, flag }, then).await
}

pub(super) async fn form(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    let Some(o) = orb(&app, &name) else {
        return not_found("no such Orb");
    };
    match blocking(move || o.file(ORBITER_YML)).await {
        Some(Ok(text)) => html(page(
            &format!("{name}: orbiter.yml"),
            Some(&name),
            &pages::edit::render(&name, text.as_deref().unwrap_or(""), None, &app.csrf),
        )),
        Some(Err(e)) => failed(e),
        None => failed("the request was cancelled"),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct TextForm {
    csrf: String,
    text: String,
}

pub(super) async fn save(
    State(app): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(f): Form<TextForm>,
) -> Response {
    if !csrf_ok(&app, &headers, &f.csrf) {
        return refused(
            StatusCode::FORBIDDEN,
            &name,
            "the form's token is missing or wrong (reload the page)",
        );
    }
    // Browsers send CRLF line ends from a textarea.
    let text = f.text.replace("\r\n", "\n");
    if let Err(e) = Edit::Text(text.clone()).apply(None) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            html(page(
                &format!("{name}: orbiter.yml"),
                Some(&name),
                &pages::edit::render(&name, &text, Some(&e.to_string()), &app.csrf),
            )),
        )
            .into_response();
    }
    let then = format!("/orbs/{}/history", url_part(&name));
    commit(&app, &name, Edit::Text(text), then).await
}
