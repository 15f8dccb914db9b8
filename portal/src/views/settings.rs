//! The Configure tab: keys (shown on request, regenerated with confirmation), dynamic schema, CORS
//! origins, app settings and limits.

use super::{Note, NoteLine};
use crate::{api, Ctx};
use leptos::prelude::*;
use roost_api::{KeyOut, PackagesOut, TenantOut, TenantSettingsPatch};
use std::collections::BTreeMap;

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// Settings of a tenant.
#[component]
pub fn Configure(tenant: String) -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let path = StoredValue::new(format!("/tenants/{}", api::enc(&tenant)));
    let info = RwSignal::new(None::<TenantOut>);
    let note = RwSignal::new(Note::None);
    let show_keys = RwSignal::new(false);
    let dynamic = RwSignal::new(true);
    let cors = RwSignal::new(String::new());
    let app_settings = RwSignal::new(String::new());
    let cpu = RwSignal::new(String::new());
    let memory = RwSignal::new(String::new());
    let concurrent = RwSignal::new(String::new());
    let timeout = RwSignal::new(String::new());
    let body_kb = RwSignal::new(String::new());
    let pkg_seconds = RwSignal::new(String::new());
    let pkg_mb = RwSignal::new(String::new());
    let fill = move |t: &TenantOut| {
        let s = &t.settings;
        dynamic.set(s.dynamic_schema);
        cors.set(s.cors_origins.join("\n"));
        app_settings.set(s.app_settings.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\n"));
        cpu.set(s.script_cpu_ms.to_string());
        memory.set(s.script_memory_mb.to_string());
        concurrent.set(s.script_max_concurrent.to_string());
        timeout.set(s.request_timeout_ms.to_string());
        body_kb.set(s.max_body_kb.to_string());
        pkg_seconds.set(s.packages_install_seconds.to_string());
        pkg_mb.set(s.packages_max_mb.to_string());
    };
    crate::spawn(async move {
        match api::get::<TenantOut>(&path.get_value()).await {
            Ok(t) => {
                fill(&t);
                info.set(Some(t));
            }
            Err(e) => note.set(Note::Err(e.message)),
        }
    });
    let regenerate = move |kind: &'static str| {
        if !window().confirm_with_message(&format!("Regenerate the {kind} key? Clients using the old key stop working at once.")).unwrap_or(false) {
            return;
        }
        crate::spawn(async move {
            match api::call::<KeyOut>("POST", &format!("{}/keys/{kind}/regenerate", path.get_value()), None::<&()>).await {
                Ok(k) => {
                    info.update(|t| {
                        if let Some(t) = t {
                            if kind == "application" {
                                t.application_key = k.key.clone();
                            } else {
                                t.master_key = k.key.clone();
                            }
                        }
                    });
                    show_keys.set(true);
                    note.set(Note::Ok(format!("The {kind} key was regenerated")));
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let number = |s: RwSignal<String>, what: &str| s.get_untracked().trim().parse::<u64>().map_err(|_| format!("{what} must be a whole number."));
        let mut settings = BTreeMap::new();
        for l in lines(&app_settings.get_untracked()) {
            match l.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    settings.insert(k.trim().to_string(), v.trim().to_string());
                }
                _ => return note.set(Note::Err(format!("App setting '{l}' is not NAME=value."))),
            }
        }
        let patch = (|| -> Result<TenantSettingsPatch, String> {
            Ok(TenantSettingsPatch {
                dynamic_schema: Some(dynamic.get_untracked()),
                cors_origins: Some(lines(&cors.get_untracked())),
                max_body_kb: Some(number(body_kb, "Maximum body size")?),
                request_timeout_ms: Some(number(timeout, "Request timeout")?),
                script_cpu_ms: Some(number(cpu, "Script CPU time")?),
                script_memory_mb: Some(number(memory, "Script memory")?),
                script_max_concurrent: Some(number(concurrent, "Concurrent scripts")?),
                packages_install_seconds: Some(number(pkg_seconds, "Package install time")?),
                packages_max_mb: Some(number(pkg_mb, "Package disk space")?),
                app_settings: Some(settings),
                ..Default::default()
            })
        })();
        let patch = match patch {
            Ok(p) => p,
            Err(m) => return note.set(Note::Err(m)),
        };
        crate::spawn(async move {
            match api::call::<TenantOut>("PATCH", &format!("{}/settings", path.get_value()), Some(&patch)).await {
                Ok(t) => {
                    fill(&t);
                    info.update(|i| {
                        if let Some(i) = i {
                            i.settings = t.settings;
                        }
                    });
                    ctx.dirty.set(false);
                    note.set(Note::Ok("Settings saved".into()));
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    on_cleanup(move || ctx.dirty.set(false));
    let field = move |label: &'static str, name: &'static str, sig: RwSignal<String>| {
        view! { <label>{label}<input name=name prop:value=sig on:input=move |ev| { sig.set(event_target_value(&ev)); ctx.dirty.set(true); }/></label> }
    };
    view! {
        <NoteLine note=note/>
        {move || info.get().map(|t| view! {
            <section class="keys">
                <h2>"Keys"</h2>
                <p>"Endpoint: " <code>{t.url.clone()}</code></p>
                {move || if show_keys.get() {
                    info.get().map(|t| view! {
                        <dl>
                            <dt>"Application key"</dt><dd><code id="application-key">{t.application_key.clone()}</code></dd>
                            <dt>"Master key"</dt><dd><code id="master-key">{t.master_key.clone()}</code></dd>
                        </dl>
                        <button on:click=move |_| show_keys.set(false)>"Hide keys"</button>
                    }).into_any()
                } else {
                    view! { <button on:click=move |_| show_keys.set(true)>"Show keys"</button> }.into_any()
                }}
                <button class="danger" on:click=move |_| regenerate("application")>"Regenerate application key"</button>
                <button class="danger" on:click=move |_| regenerate("master")>"Regenerate master key"</button>
            </section>
        })}
        <form class="settings" on:submit=save>
            <h2>"Settings"</h2>
            <label class="check"><input type="checkbox" name="dynamic-schema" prop:checked=dynamic on:change=move |ev| { dynamic.set(event_target_checked(&ev)); ctx.dirty.set(true); }/>" Dynamic schema (new properties become columns)"</label>
            <label>"CORS origins (one per line)"<textarea name="cors" rows="3" prop:value=cors on:input=move |ev| { cors.set(event_target_value(&ev)); ctx.dirty.set(true); }></textarea></label>
            <label>"App settings (NAME=value per line; process.env in scripts)"<textarea name="app-settings" rows="4" prop:value=app_settings on:input=move |ev| { app_settings.set(event_target_value(&ev)); ctx.dirty.set(true); }></textarea></label>
            <fieldset>
                <legend>"Limits"</legend>
                {field("Script CPU time per call (ms)", "script-cpu-ms", cpu)}
                {field("Script memory (MB)", "script-memory-mb", memory)}
                {field("Concurrent script calls", "script-max-concurrent", concurrent)}
                {field("Request timeout (ms)", "request-timeout-ms", timeout)}
                {field("Maximum request body (KB)", "max-body-kb", body_kb)}
                {field("npm install time (s)", "packages-install-seconds", pkg_seconds)}
                {field("Installed packages disk space (MB)", "packages-max-mb", pkg_mb)}
            </fieldset>
            <button type="submit" class="primary">"Save settings"</button>
        </form>
        <Packages tenant=tenant.clone()/>
    }
}

/// The tenant's package.json: edited as text, installed by the server with npm on save.
#[component]
fn Packages(tenant: String) -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let path = StoredValue::new(format!("/tenants/{}/packages", api::enc(&tenant)));
    let text = RwSignal::new(String::new());
    let info = RwSignal::new(None::<PackagesOut>);
    let note = RwSignal::new(Note::None);
    crate::spawn(async move {
        match api::get::<PackagesOut>(&path.get_value()).await {
            Ok(p) => {
                text.set(p.package_json.clone().unwrap_or_else(|| "{\n  \"dependencies\": {}\n}\n".into()));
                info.set(Some(p));
            }
            Err(e) => note.set(Note::Err(e.message)),
        }
    });
    let save = move |_| {
        let manifest: serde_json::Value = match serde_json::from_str(&text.get_untracked()) {
            Ok(v) => v,
            Err(e) => return note.set(Note::Err(format!("package.json is not JSON: {e}"))),
        };
        note.set(Note::Busy("Installing with npm…".into()));
        crate::spawn(async move {
            match api::call::<PackagesOut>("PUT", &path.get_value(), Some(&manifest)).await {
                Ok(p) => {
                    if let Some(t) = &p.package_json {
                        text.set(t.clone());
                    }
                    ctx.dirty.set(false);
                    note.set(Note::Ok(if p.added.is_empty() {
                        "Packages installed".into()
                    } else {
                        format!("Packages installed; added {}", p.added.join(", "))
                    }));
                    info.set(Some(p));
                }
                // The text stays as typed; the previous packages stay installed.
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    view! {
        <section class="packages">
            <h2>"npm packages"</h2>
            <p>"The service's package.json (dependencies). Saving installs them with npm; scripts then require them."</p>
            <NoteLine note=note/>
            <textarea name="package-json" rows="8" prop:value=text on:input=move |ev| { text.set(event_target_value(&ev)); ctx.dirty.set(true); }></textarea>
            <button class="primary" on:click=save>"Save and install"</button>
            {move || info.get().filter(|p| !p.resolved.is_empty()).map(|p| view! {
                <table class="grid" id="packages">
                    <thead><tr><th>"Package"</th><th>"Installed version"</th></tr></thead>
                    <tbody>{p.resolved.into_iter().map(|(n, v)| view! { <tr><td>{n}</td><td>{v}</td></tr> }).collect_view()}</tbody>
                </table>
            })}
        </section>
    }
}
