//! The Identity tab: the tenant's identity providers (added, edited and removed; the client secret is
//! write-only: only its last characters are shown), a test sign-in link per provider, the login
//! token lifetime, and "revoke all user tokens".

use super::{Note, NoteLine};
use crate::{api, Ctx};
use leptos::prelude::*;
use roost_api::{ProviderIn, ProviderKind, ProviderOut, RevokedOut, TenantOut, TenantSettingsPatch};

fn lines(s: &str) -> Vec<String> {
    s.split(|c: char| c == '\n' || c == ',').map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// The identity providers of a tenant.
#[component]
pub fn Identity(tenant: String) -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let base = StoredValue::new(format!("/tenants/{}", api::enc(&tenant)));
    let providers = RwSignal::new(Vec::<ProviderOut>::new());
    let endpoint = RwSignal::new(String::new());
    let note = RwSignal::new(Note::None);
    let name = RwSignal::new(String::new());
    let kind = RwSignal::new("google".to_string());
    let discovery = RwSignal::new(String::new());
    let client_id = RwSignal::new(String::new());
    let secret = RwSignal::new(String::new());
    let scopes = RwSignal::new("profile email".to_string());
    let audiences = RwSignal::new(String::new());
    let entra = RwSignal::new(String::new());
    let editing = RwSignal::new(false);
    let token_days = RwSignal::new(String::new());
    let reload = move || {
        crate::spawn(async move {
            match api::get::<Vec<ProviderOut>>(&format!("{}/identity/providers", base.get_value())).await {
                Ok(p) => providers.set(p),
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    reload();
    crate::spawn(async move {
        if let Ok(t) = api::get::<TenantOut>(&base.get_value()).await {
            endpoint.set(t.url.clone());
            token_days.set(t.settings.login_token_days.to_string());
        }
    });
    let clear = move || {
        editing.set(false);
        name.set(String::new());
        kind.set("google".into());
        discovery.set(String::new());
        client_id.set(String::new());
        secret.set(String::new());
        scopes.set("profile email".into());
        audiences.set(String::new());
        entra.set(String::new());
        ctx.dirty.set(false);
    };
    let edit = move |p: ProviderOut| {
        editing.set(true);
        name.set(p.name.clone());
        kind.set(p.kind.as_str().into());
        discovery.set(if p.kind == ProviderKind::Oidc { p.discovery_url.clone().unwrap_or_default() } else { String::new() });
        client_id.set(p.client_id.clone());
        secret.set(String::new());
        scopes.set(p.scopes.join(" "));
        audiences.set(p.audiences.join("\n"));
        entra.set(p.entra_tenants.join("\n"));
    };
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let provider = name.get_untracked().trim().to_string();
        if provider.is_empty() {
            return note.set(Note::Err("A provider needs a name (the one in /login/{name}).".into()));
        }
        let typed_secret = secret.get_untracked();
        let url = discovery.get_untracked().trim().to_string();
        let input = ProviderIn {
            kind: ProviderKind::parse(&kind.get_untracked()),
            discovery_url: Some(url).filter(|u| !u.is_empty()),
            client_id: client_id.get_untracked().trim().to_string(),
            // Left empty on a change: the stored secret is kept.
            client_secret: Some(typed_secret).filter(|s| !s.is_empty()),
            scopes: Some(scopes.get_untracked().split_whitespace().map(str::to_string).collect()),
            audiences: lines(&audiences.get_untracked()),
            entra_tenants: lines(&entra.get_untracked()),
        };
        crate::spawn(async move {
            match api::call::<ProviderOut>("PUT", &format!("{}/identity/providers/{}", base.get_value(), api::enc(&provider)), Some(&input)).await {
                Ok(p) => {
                    note.set(Note::Ok(format!("Saved provider {}: sign-in at /login/{}", p.name, p.name)));
                    clear();
                    reload();
                }
                // The form keeps what was typed.
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    let remove = move |provider: String| {
        if !window().confirm_with_message(&format!("Remove the provider {provider}? Its sign-in stops at once.")).unwrap_or(false) {
            return;
        }
        crate::spawn(async move {
            match api::send("DELETE", &format!("{}/identity/providers/{}", base.get_value(), api::enc(&provider)), None::<&()>).await {
                Ok(()) => {
                    note.set(Note::Ok(format!("Removed provider {provider}")));
                    reload();
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    let revoke = move |_| {
        if !window().confirm_with_message("Revoke every user token of this service? Every signed-in user must sign in again.").unwrap_or(false) {
            return;
        }
        crate::spawn(async move {
            match api::call::<RevokedOut>("POST", &format!("{}/tokens/revoke", base.get_value()), None::<&()>).await {
                Ok(r) => note.set(Note::Ok(format!("Every user token issued before {} is revoked", r.revoked_at))),
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    let save_days = move |_| {
        let Ok(days) = token_days.get_untracked().trim().parse::<u64>() else {
            return note.set(Note::Err("The token lifetime must be a whole number of days.".into()));
        };
        let patch = TenantSettingsPatch { login_token_days: Some(days), ..Default::default() };
        crate::spawn(async move {
            match api::call::<TenantOut>("PATCH", &format!("{}/settings", base.get_value()), Some(&patch)).await {
                Ok(t) => note.set(Note::Ok(format!("Login tokens now last {} days", t.settings.login_token_days))),
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    on_cleanup(move || ctx.dirty.set(false));
    let input = move |label: &'static str, field: &'static str, sig: RwSignal<String>, kind_of: &'static str| {
        view! { <label>{label}<input name=field type=kind_of prop:value=sig on:input=move |ev| { sig.set(event_target_value(&ev)); ctx.dirty.set(true); }/></label> }
    };
    view! {
        <NoteLine note=note/>
        <section class="providers">
            <h2>"Identity providers"</h2>
            {move || if providers.get().is_empty() {
                view! { <p>"No identity provider yet: add one below."</p> }.into_any()
            } else {
                view! {
                    <table class="grid" id="providers">
                        <thead><tr><th>"Name"</th><th>"Kind"</th><th>"Client id"</th><th>"Secret"</th><th>"User ids"</th><th></th></tr></thead>
                        <tbody>{providers.get().into_iter().map(|p| {
                            let (for_edit, for_remove) = (p.clone(), p.name.clone());
                            let test_url = format!("{}{}", endpoint.get().trim_end_matches('/'), p.login_path);
                            view! {
                                <tr data-provider=p.name.clone()>
                                    <td>{p.name.clone()}</td>
                                    <td>{p.kind.as_str()}</td>
                                    <td><code>{p.client_id.clone()}</code></td>
                                    <td class="secret">{p.client_secret_hint.clone().unwrap_or_else(|| "none".into())}</td>
                                    <td>{format!("{}:<subject>", p.uid_prefix)}</td>
                                    <td>
                                        <a class="button" target="_blank" rel="noopener" href=test_url>"Test sign-in"</a>
                                        <button on:click=move |_| edit(for_edit.clone())>"Edit"</button>
                                        <button class="danger" on:click=move |_| remove(for_remove.clone())>"Remove"</button>
                                    </td>
                                </tr>
                            }
                        }).collect_view()}</tbody>
                    </table>
                }.into_any()
            }}
        </section>
        <form class="provider" on:submit=save>
            <h2>{move || if editing.get() { format!("Edit {}", name.get()) } else { "Add a provider".to_string() }}</h2>
            <label>"Name (in /login/{name})"<input name="provider-name" prop:value=name prop:readonly=editing on:input=move |ev| {
                let v = event_target_value(&ev);
                if let Some(k) = ProviderKind::parse(&v.to_ascii_lowercase()) { kind.set(k.as_str().into()); }
                name.set(v);
                ctx.dirty.set(true);
            }/></label>
            <label>"Kind"<select name="provider-kind" prop:value=kind on:change=move |ev| kind.set(event_target_value(&ev))>
                {ProviderKind::ALL.into_iter().map(|k| view! { <option value=k.as_str()>{k.as_str()}</option> }).collect_view()}
            </select></label>
            {input("Discovery URL (…/.well-known/openid-configuration; presets fill it)", "discovery-url", discovery, "url")}
            {input("Client id", "client-id", client_id, "text")}
            <label>{move || if editing.get() { "Client secret (leave empty to keep the stored one)" } else { "Client secret" }}
                <input name="client-secret" type="password" autocomplete="new-password" prop:value=secret on:input=move |ev| { secret.set(event_target_value(&ev)); ctx.dirty.set(true); }/></label>
            {input("Scopes beyond openid (space-separated)", "scopes", scopes, "text")}
            <label>"Other client ids accepted as audience (one per line)"<textarea name="audiences" rows="2" prop:value=audiences on:input=move |ev| { audiences.set(event_target_value(&ev)); ctx.dirty.set(true); }></textarea></label>
            {move || (kind.get() == "aad").then(|| view! {
                <label>"Entra tenant ids whose users may sign in (one per line; empty: any)"<textarea name="entra-tenants" rows="2" prop:value=entra on:input=move |ev| { entra.set(event_target_value(&ev)); ctx.dirty.set(true); }></textarea></label>
            })}
            <button type="submit" class="primary">"Save provider"</button>
            {move || editing.get().then(|| view! { <button type="button" on:click=move |_| clear()>"Cancel"</button> })}
        </form>
        <section class="tokens">
            <h2>"User tokens"</h2>
            <label>"Login token lifetime (days)"<input name="login-token-days" prop:value=token_days on:input=move |ev| token_days.set(event_target_value(&ev))/></label>
            <button on:click=save_days>"Save lifetime"</button>
            <p>"Revoking makes every user token issued so far invalid; the keys stay."</p>
            <button class="danger" on:click=revoke>"Revoke all user tokens"</button>
        </section>
    }
}
