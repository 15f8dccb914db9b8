//! The portal's views.

pub mod account;
pub mod data;
pub mod identity;
pub mod logs;
pub mod monitor;
pub mod push;
pub mod scripts;
pub mod settings;
pub mod signin;
pub mod tenants;

use crate::{api, Ctx};
use leptos::prelude::*;
use roost_api::Role;

/// A message line: errors from the server, or what just happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// Nothing to say.
    None,
    /// Work in progress.
    Busy(String),
    /// Done.
    Ok(String),
    /// Failed.
    Err(String),
}

/// Shows a [`Note`].
#[component]
pub fn NoteLine(note: RwSignal<Note>) -> impl IntoView {
    move || match note.get() {
        Note::None => view! { <span></span> }.into_any(),
        Note::Busy(m) => view! { <p class="note busy" role="status">{m}</p> }.into_any(),
        Note::Ok(m) => view! { <p class="note ok" role="status">{m}</p> }.into_any(),
        Note::Err(m) => view! { <p class="note error" role="alert">{m}</p> }.into_any(),
    }
}

/// The signed-in frame: header with the account and sign-out, then the routed view.
#[component]
pub fn Shell() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let sign_out = move |_| {
        crate::spawn(async move {
            let _ = api::send("DELETE", "/session", None::<&()>).await;
            ctx.dirty.set(false);
            ctx.session.set(None);
            crate::navigate("/");
        });
    };
    let email = move || ctx.session.with(|s| s.as_ref().map(|s| s.account.email.clone()).unwrap_or_default());
    let role = move || ctx.role().map(|r| r.as_str()).unwrap_or_default();
    view! {
        <header class="top">
            <a class="brand" href="#/">"Roost"</a>
            <nav>
                <a href="#/">"Tenants"</a>
                {move || matches!(ctx.role(), Some(Role::Admin | Role::Support)).then(|| view! { <a href="#/monitoring">"Monitoring"</a> })}
                {move || (ctx.role() == Some(Role::Admin)).then(|| view! { <a href="#/accounts">"Accounts"</a> })}
                <a href="#/account">"My account"</a>
            </nav>
            <span class="who"><span class="email">{email}</span>" · "<span class="role">{role}</span></span>
            <button class="link" on:click=sign_out>"Sign out"</button>
        </header>
        <main>
            {move || {
                let r = ctx.route.get();
                match r.first().map(String::as_str) {
                    Some("account") => view! { <account::MyAccount/> }.into_any(),
                    Some("accounts") => view! { <account::Accounts/> }.into_any(),
                    Some("monitoring") => view! { <monitor::Platform/> }.into_any(),
                    Some("t") if r.len() >= 2 => {
                        let tab = r.get(2).cloned().unwrap_or_else(|| "dashboard".into());
                        view! { <tenants::Tenant name=r[1].clone() tab=tab rest=r[3.min(r.len())..].to_vec()/> }.into_any()
                    }
                    _ => view! { <tenants::Tenants/> }.into_any(),
                }
            }}
        </main>
    }
}
