//! The tenant list (create, delete with typed-name confirmation) and a tenant's tabs.

use super::{Note, NoteLine};
use crate::{api, Ctx};
use leptos::prelude::*;
use roost_api::{Role, TenantIn, TenantOut, TenantSummary};

/// Marks the first render of the tenant list (read by `scripts/portal-metrics`).
fn mark_first_render() {
    let w = window();
    let key = wasm_bindgen::JsValue::from_str("__roostTenantsRendered");
    if js_sys::Reflect::get(&w, &key).map(|v| v.is_undefined()).unwrap_or(true) {
        let now = w.performance().map(|p| p.now()).unwrap_or_default();
        let _ = js_sys::Reflect::set(&w, &key, &wasm_bindgen::JsValue::from_f64(now));
    }
}

/// All tenants the account may see.
#[component]
pub fn Tenants() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let list = RwSignal::new(None::<Vec<TenantSummary>>);
    let note = RwSignal::new(Note::None);
    let reload = crate::in_view(move || {
        crate::spawn(async move {
            match api::get::<Vec<TenantSummary>>("/tenants").await {
                Ok(v) => list.set(Some(v)),
                Err(e) => note.set(Note::Err(e.message)),
            }
        })
    });
    reload();
    Effect::new(move |_| {
        if list.with(Option::is_some) {
            request_animation_frame(mark_first_render);
        }
    });
    let new_name = RwSignal::new(String::new());
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let name = new_name.get_untracked().trim().to_string();
        note.set(Note::Busy(format!("Creating {name}…")));
        crate::spawn(async move {
            match api::call::<TenantOut>("POST", "/tenants", Some(&TenantIn { name: name.clone(), settings: None })).await {
                Ok(t) => {
                    new_name.set(String::new());
                    note.set(Note::Ok(format!("Created {}", t.name)));
                    reload();
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    let deleting = RwSignal::new(None::<String>);
    let confirm_text = RwSignal::new(String::new());
    let delete = move |_| {
        let Some(name) = deleting.get_untracked() else { return };
        if confirm_text.get_untracked() != name {
            note.set(Note::Err(format!("Type '{name}' to delete it.")));
            return;
        }
        crate::spawn(async move {
            match api::send("DELETE", &format!("/tenants/{}", api::enc(&name)), None::<&()>).await {
                Ok(()) => {
                    note.set(Note::Ok(format!("Deleted {name}")));
                    deleting.set(None);
                    confirm_text.set(String::new());
                    reload();
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    let may_write = move || matches!(ctx.role(), Some(Role::Admin | Role::Owner));
    view! {
        <section class="tenants">
            <h1>"Tenants"</h1>
            <NoteLine note=note/>
            {move || may_write().then(|| view! {
                <form class="inline" on:submit=create>
                    <input name="tenant-name" placeholder="new tenant name" required prop:value=new_name on:input=move |ev| new_name.set(event_target_value(&ev))/>
                    <button type="submit">"Create tenant"</button>
                </form>
            })}
            {move || match list.get() {
                None => view! { <p class="loading">"Loading tenants…"</p> }.into_any(),
                Some(v) if v.is_empty() => view! { <p class="empty">"No tenants yet."</p> }.into_any(),
                Some(v) => view! {
                    <table class="grid" id="tenant-list">
                        <thead><tr><th>"Name"</th><th>"Endpoint"</th><th>"Created"</th><th></th></tr></thead>
                        <tbody>
                            {v.into_iter().map(|t| {
                                let name = t.name.clone();
                                let href = format!("#/t/{}", t.name);
                                view! {
                                    <tr>
                                        <td><a href=href>{t.name.clone()}</a></td>
                                        <td><code>{t.url.clone()}</code></td>
                                        <td>{t.created_at.clone()}</td>
                                        <td>{may_write().then(|| view! { <button class="danger small" on:click=move |_| { deleting.set(Some(name.clone())); confirm_text.set(String::new()); }>"Delete"</button> })}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any(),
            }}
            {move || deleting.get().map(|name| view! {
                <div class="confirm" role="dialog">
                    <p>"Deleting " <strong>{name.clone()}</strong> " removes its tables, rows, scripts and logs. Type its name to confirm:"</p>
                    <input name="confirm-name" prop:value=confirm_text on:input=move |ev| confirm_text.set(event_target_value(&ev))/>
                    <button class="danger" on:click=delete>"Delete for good"</button>
                    <button on:click=move |_| deleting.set(None)>"Cancel"</button>
                </div>
            })}
        </section>
    }
}

/// A tenant's page: tabs as in the Mobile Services portal.
#[component]
pub fn Tenant(name: String, tab: String, rest: Vec<String>) -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let support = ctx.role() == Some(Role::Support);
    let tabs: Vec<(&str, &str)> = if support {
        vec![("dashboard", "Dashboard"), ("monitor", "Monitor"), ("logs", "Logs"), ("scale", "Scale")]
    } else {
        vec![
            ("dashboard", "Dashboard"),
            ("data", "Data"),
            ("api", "API"),
            ("scheduler", "Scheduler"),
            ("shared", "Shared"),
            ("configure", "Configure"),
            ("identity", "Identity"),
            ("push", "Push"),
            ("logs", "Logs"),
            ("monitor", "Monitor"),
            ("scale", "Scale"),
        ]
    };
    let links = tabs
        .iter()
        .map(|(id, label)| {
            let class = if *id == tab { "tab active" } else { "tab" };
            view! { <a class=class href=format!("#/t/{}/{}", name, id)>{label.to_string()}</a> }
        })
        .collect_view();
    let body = match tab.as_str() {
        "data" if !support => view! { <super::data::Data tenant=name.clone() rest=rest/> }.into_any(),
        "api" if !support => view! { <super::scripts::Scripts tenant=name.clone() kind="api" selected=rest.first().cloned()/> }.into_any(),
        "scheduler" if !support => view! { <super::scripts::Scripts tenant=name.clone() kind="job" selected=rest.first().cloned()/> }.into_any(),
        "shared" if !support => view! { <super::scripts::Scripts tenant=name.clone() kind="shared" selected=rest.first().cloned()/> }.into_any(),
        "configure" if !support => view! { <super::settings::Configure tenant=name.clone()/> }.into_any(),
        "identity" if !support => view! { <super::identity::Identity tenant=name.clone()/> }.into_any(),
        "push" if !support => view! { <super::push::Push tenant=name.clone()/> }.into_any(),
        "logs" => view! { <super::logs::Logs tenant=name.clone()/> }.into_any(),
        "monitor" => view! { <super::logs::Monitor tenant=name.clone()/> }.into_any(),
        "dashboard" => view! { <super::monitor::Dashboard tenant=name.clone()/> }.into_any(),
        "scale" => view! { <super::monitor::Scale tenant=name.clone()/> }.into_any(),
        _ => view! { <p class="note error">"This view is not available to your role."</p> }.into_any(),
    };
    view! {
        <section class="tenant">
            <h1><a href="#/">"Tenants"</a>" / " {name.clone()}</h1>
            <nav class="tabs">{links}</nav>
            <div class="tab-body">{body}</div>
        </section>
    }
}
