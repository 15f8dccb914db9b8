//! My account (password, personal API tokens) and, for admins, all accounts.

use super::{Note, NoteLine};
use crate::api;
use leptos::prelude::*;
use roost_api::{AccountIn, AccountOut, ApiTokenIn, ApiTokenOut, PasswordIn, Role};

/// Password change and personal API tokens.
#[component]
pub fn MyAccount() -> impl IntoView {
    let note = RwSignal::new(Note::None);
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let change = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = PasswordIn { current_password: current.get_untracked(), new_password: new.get_untracked() };
        crate::spawn(async move {
            match api::send("PUT", "/account/password", Some(&body)).await {
                Ok(()) => {
                    current.set(String::new());
                    new.set(String::new());
                    note.set(Note::Ok("Password changed".into()));
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    let tokens = RwSignal::new(Vec::<ApiTokenOut>::new());
    let reload = move || {
        crate::spawn(async move {
            match api::get::<Vec<ApiTokenOut>>("/account/tokens").await {
                Ok(v) => tokens.set(v),
                Err(e) => note.set(Note::Err(e.message)),
            }
        })
    };
    reload();
    let token_name = RwSignal::new(String::new());
    let fresh = RwSignal::new(None::<String>);
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = ApiTokenIn { name: token_name.get_untracked() };
        crate::spawn(async move {
            match api::call::<ApiTokenOut>("POST", "/account/tokens", Some(&body)).await {
                Ok(t) => {
                    fresh.set(t.token);
                    token_name.set(String::new());
                    reload();
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    let revoke = move |id: String| {
        crate::spawn(async move {
            match api::send("DELETE", &format!("/account/tokens/{}", api::enc(&id)), None::<&()>).await {
                Ok(()) => reload(),
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    view! {
        <section class="account">
            <h1>"My account"</h1>
            <NoteLine note=note/>
            <form on:submit=change>
                <h2>"Change password"</h2>
                <label>"Current password"<input type="password" name="current-password" autocomplete="current-password" prop:value=current on:input=move |ev| current.set(event_target_value(&ev))/></label>
                <label>"New password (10 characters or more)"<input type="password" name="new-password" autocomplete="new-password" prop:value=new on:input=move |ev| new.set(event_target_value(&ev))/></label>
                <button type="submit">"Change password"</button>
            </form>
            <h2>"Personal API tokens"</h2>
            <p>"For the CLI and scripts: " <code>"Authorization: Bearer <token>"</code> " on /manage/v1, with your role."</p>
            <form class="inline" on:submit=create>
                <input name="token-name" placeholder="token name" required prop:value=token_name on:input=move |ev| token_name.set(event_target_value(&ev))/>
                <button type="submit">"Create token"</button>
            </form>
            {move || fresh.get().map(|t| view! { <p class="note ok">"Copy it now, it is not shown again: " <code id="new-token">{t}</code></p> })}
            <table class="grid">
                <thead><tr><th>"Name"</th><th>"Created"</th><th>"Last used"</th><th></th></tr></thead>
                <tbody>{move || tokens.get().into_iter().map(|t| {
                    let id = t.id.clone();
                    view! { <tr><td>{t.name}</td><td>{t.created_at}</td><td>{t.last_used_at.unwrap_or_default()}</td><td><button class="small danger" on:click=move |_| revoke(id.clone())>"Revoke"</button></td></tr> }
                }).collect_view()}</tbody>
            </table>
        </section>
    }
}

/// All accounts (admins).
#[component]
pub fn Accounts() -> impl IntoView {
    let note = RwSignal::new(Note::None);
    let list = RwSignal::new(Vec::<AccountOut>::new());
    let reload = move || {
        crate::spawn(async move {
            match api::get::<Vec<AccountOut>>("/accounts").await {
                Ok(v) => list.set(v),
                Err(e) => note.set(Note::Err(e.message)),
            }
        })
    };
    reload();
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let role = RwSignal::new("owner".to_string());
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body =
            AccountIn { email: email.get_untracked(), password: password.get_untracked(), role: Role::parse(&role.get_untracked()).unwrap_or(Role::Owner) };
        crate::spawn(async move {
            match api::call::<AccountOut>("POST", "/accounts", Some(&body)).await {
                Ok(a) => {
                    note.set(Note::Ok(format!("Created {}", a.email)));
                    email.set(String::new());
                    password.set(String::new());
                    reload();
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    let remove = move |a: AccountOut| {
        if !window().confirm_with_message(&format!("Delete the account {}?", a.email)).unwrap_or(false) {
            return;
        }
        crate::spawn(async move {
            match api::send("DELETE", &format!("/accounts/{}", api::enc(&a.id)), None::<&()>).await {
                Ok(()) => reload(),
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    view! {
        <section class="accounts">
            <h1>"Accounts"</h1>
            <NoteLine note=note/>
            <form class="inline" on:submit=create>
                <input type="email" name="account-email" placeholder="e-mail" required prop:value=email on:input=move |ev| email.set(event_target_value(&ev))/>
                <input type="password" name="account-password" placeholder="initial password" required prop:value=password on:input=move |ev| password.set(event_target_value(&ev))/>
                <select name="account-role" on:change=move |ev| role.set(event_target_value(&ev))>
                    <option value="owner" selected>"owner"</option>
                    <option value="support">"support"</option>
                    <option value="admin">"admin"</option>
                </select>
                <button type="submit">"Create account"</button>
            </form>
            <table class="grid" id="accounts">
                <thead><tr><th>"E-mail"</th><th>"Role"</th><th>"Created"</th><th></th></tr></thead>
                <tbody>{move || list.get().into_iter().map(|a| {
                    let a2 = a.clone();
                    view! { <tr><td>{a.email.clone()}</td><td>{a.role.as_str()}</td><td>{a.created_at.clone()}</td><td><button class="small danger" on:click=move |_| remove(a2.clone())>"Delete"</button></td></tr> }
                }).collect_view()}</tbody>
            </table>
        </section>
    }
}
