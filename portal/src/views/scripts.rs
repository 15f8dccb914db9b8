//! Script editing: table scripts, custom APIs (with per-verb permissions), jobs (schedule, run once,
//! recent runs) and shared modules. A failed save keeps the text and marks the error's line.

use super::{Note, NoteLine};
use crate::editor::CodeEditor;
use crate::{api, Ctx};
use leptos::prelude::*;
use roost_api::{ApiPermissions, JobRunOut, JobSchedule, Permission, PermissionEntry, RoutePermissions, ScheduleUnit, ScriptIn, ScriptOut};
use std::collections::BTreeMap;

fn template(kind: &str, name: &str) -> String {
    match (kind, name.rsplit('.').next().unwrap_or_default()) {
        ("table", "insert") => "function insert(item, user, request) {\n    request.execute();\n}\n".into(),
        ("table", "read") => "function read(query, user, request) {\n    request.execute();\n}\n".into(),
        ("table", "update") => "function update(item, user, request) {\n    request.execute();\n}\n".into(),
        ("table", "delete") => "function del(id, user, request) {\n    request.execute();\n}\n".into(),
        ("api", _) => "exports.get = function (request, response) {\n    response.send(200, { message: 'Hello from ".to_string() + name + "' });\n};\n",
        ("job", _) => format!("function {}() {{\n    console.log('{} ran');\n}}\n", name.replace(['-', '.'], "_"), name),
        _ => "exports.hello = function (who) {\n    return 'Hello, ' + who;\n};\n".into(),
    }
}

const VERBS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The permission of `verb` in the `*` route of `p` (default admin).
fn verb_permission(p: &Option<ApiPermissions>, verb: &str) -> Permission {
    match p.as_ref().and_then(|p| p.routes.get("*")) {
        Some(RoutePermissions::All(e)) => e.permission,
        Some(RoutePermissions::Verbs(m)) => m.get(verb).or_else(|| m.get("*")).map(|e| e.permission).unwrap_or(Permission::Admin),
        None => Permission::Admin,
    }
}

/// Edits one script: `kind` `table|api|job|shared`, `name` as stored (`todo.insert`).
#[component]
pub fn ScriptPane(tenant: String, kind: &'static str, name: String) -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let path = StoredValue::new(format!("/tenants/{}/scripts/{}/{}", api::enc(&tenant), kind, api::enc(&name)));
    let job_path = StoredValue::new(format!("/tenants/{}/jobs/{}", api::enc(&tenant), api::enc(&name)));
    let loaded = RwSignal::new(None::<String>); // initial editor text once known
    let exists = RwSignal::new(false);
    let baseline = RwSignal::new(None::<String>); // the text counted as saved
    let text = RwSignal::new(String::new());
    let mark = RwSignal::new(None::<(u32, u32, String)>);
    let note = RwSignal::new(Note::None);
    let verbs: Vec<(&'static str, RwSignal<Permission>)> = VERBS.iter().map(|v| (*v, RwSignal::new(Permission::Admin))).collect();
    let verbs = StoredValue::new(verbs);
    let interval = RwSignal::new(15u32);
    let unit = RwSignal::new("minute".to_string());
    let enabled = RwSignal::new(false);
    let runs = RwSignal::new(Vec::<JobRunOut>::new());
    // Also called by the interval below, outside the view's owner: `try_` reads and writes.
    let load_runs = move || {
        let Some(path) = job_path.try_get_value() else { return };
        if kind == "job" {
            leptos::task::spawn_local(async move {
                if let Ok(r) = api::get::<Vec<JobRunOut>>(&format!("{path}/runs?limit=10")).await {
                    runs.try_set(r);
                }
            });
        }
    };
    if kind == "job" {
        if let Ok(handle) = set_interval_with_handle(load_runs, std::time::Duration::from_secs(3)) {
            on_cleanup(move || handle.clear());
        }
    }
    let template_text = template(kind, &name);
    crate::spawn(async move {
        match api::get::<ScriptOut>(&path.get_value()).await {
            Ok(s) => {
                verbs.with_value(|v| v.iter().for_each(|(verb, sig)| sig.set(verb_permission(&s.permissions, verb))));
                if let Some(sc) = &s.schedule {
                    interval.set(sc.interval);
                    unit.set(format!("{:?}", sc.unit).to_lowercase());
                    enabled.set(sc.enabled);
                }
                exists.set(true);
                baseline.set(Some(s.body.clone()));
                text.set(s.body.clone());
                loaded.set(Some(s.body));
            }
            Err(e) if e.status == 404 => {
                baseline.set(Some(template_text.clone()));
                text.set(template_text.clone());
                loaded.set(Some(template_text));
            }
            Err(e) => note.set(Note::Err(e.message)),
        }
    });
    load_runs();
    // Unsaved changes: the text differs from what was saved (a new script counts once edited).
    let dirty = Memo::new(move |_| baseline.with(|b| b.as_ref().is_some_and(|b| *b != text.get())));
    Effect::new(move |_| ctx.dirty.set(dirty.get()));
    on_cleanup(move || ctx.dirty.set(false));
    let save = move |_| {
        let body = text.get_untracked();
        let permissions = (kind == "api").then(|| {
            let mut m = BTreeMap::new();
            verbs.with_value(|v| {
                for (verb, sig) in v {
                    m.insert(verb.to_string(), PermissionEntry { permission: sig.get_untracked() });
                }
            });
            ApiPermissions { routes: BTreeMap::from([("*".to_string(), RoutePermissions::Verbs(m))]) }
        });
        let schedule = (kind == "job").then(|| JobSchedule {
            interval: interval.get_untracked().max(1),
            unit: match unit.get_untracked().as_str() {
                "hour" => ScheduleUnit::Hour,
                "day" => ScheduleUnit::Day,
                "month" => ScheduleUnit::Month,
                _ => ScheduleUnit::Minute,
            },
            start: None,
            enabled: enabled.get_untracked(),
        });
        note.set(Note::Busy("Saving…".into()));
        crate::spawn(async move {
            match api::call::<ScriptOut>("PUT", &path.get_value(), Some(&ScriptIn { body: body.clone(), permissions, schedule })).await {
                Ok(s) => {
                    mark.set(None);
                    exists.set(true);
                    baseline.set(Some(body));
                    ctx.scripts_changed.update(|n| *n += 1);
                    note.set(Note::Ok(format!("Saved {}", s.path)));
                }
                Err(e) => {
                    // The editor keeps the text; the error shows at its line.
                    if let (Some(line), Some(column)) = (e.line, e.column) {
                        mark.set(Some((line, column, e.message.clone())));
                    }
                    note.set(Note::Err(e.message));
                }
            }
        });
    };
    let delete = move |_| {
        if !window().confirm_with_message("Delete this script?").unwrap_or(false) {
            return;
        }
        crate::spawn(async move {
            match api::send("DELETE", &path.get_value(), None::<&()>).await {
                Ok(()) => {
                    exists.set(false);
                    baseline.set(Some(text.get_untracked()));
                    ctx.scripts_changed.update(|n| *n += 1);
                    note.set(Note::Ok("Script deleted".into()));
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    let run_now = move |_| {
        crate::spawn(async move {
            match api::send("POST", &format!("{}/run", job_path.get_value()), None::<&()>).await {
                Ok(()) => {
                    note.set(Note::Ok("Job started; its outcome appears under Recent runs".into()));
                    set_timeout(load_runs, std::time::Duration::from_millis(500));
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    let verb_selects = move || {
        verbs.with_value(|v| {
            v.iter()
                .map(|(verb, sig)| {
                    let sig = *sig;
                    let options = [Permission::Public, Permission::Application, Permission::User, Permission::Admin]
                        .into_iter()
                        .map(|p| view! { <option value=p.as_str() selected={move || sig.get() == p}>{p.as_str()}</option> })
                        .collect_view();
                    view! {
                        <label class="permission">{verb.to_uppercase()}
                            <select name=format!("api-perm-{verb}") on:change=move |ev| if let Some(p) = Permission::parse(&event_target_value(&ev)) { sig.set(p); ctx.dirty.set(true); }>{options}</select>
                        </label>
                    }
                })
                .collect_view()
        })
    };
    view! {
        <div class="script-pane">
            <NoteLine note=note/>
            {move || (kind == "api").then(|| view! { <div class="permissions"><strong>"Permissions"</strong>{verb_selects()}</div> })}
            {move || (kind == "job").then(|| view! {
                <div class="schedule">
                    <label>"Every " <input type="number" min="1" name="interval" prop:value=move || interval.get().to_string() on:input=move |ev| if let Ok(n) = event_target_value(&ev).parse() { interval.set(n) }/></label>
                    <select name="unit" on:change=move |ev| unit.set(event_target_value(&ev))>
                        {["minute", "hour", "day", "month"].into_iter().map(|u| view! { <option value=u selected={move || unit.get() == u}>{format!("{u}s")}</option> }).collect_view()}
                    </select>
                    <label><input type="checkbox" name="enabled" prop:checked=enabled on:change=move |ev| enabled.set(event_target_checked(&ev))/>" enabled"</label>
                    <button on:click=run_now disabled={move || !exists.get()}>"Run once"</button>
                </div>
            })}
            {move || match loaded.get() {
                None => view! { <p class="loading">"Loading script…"</p> }.into_any(),
                Some(initial) => view! { <CodeEditor initial=initial text=text mark=mark/> }.into_any(),
            }}
            <div class="buttons">
                <button class="primary" on:click=save>"Save"</button>
                {move || exists.get().then(|| view! { <button class="danger" on:click=delete>"Delete script"</button> })}
                {move || dirty.get().then(|| view! { <span class="unsaved">"Unsaved changes"</span> })}
            </div>
            {move || (kind == "job").then(|| view! {
                <h3>"Recent runs"</h3>
                <table class="grid" id="job-runs">
                    <thead><tr><th>"Due"</th><th>"Started"</th><th>"Outcome"</th><th>"ms"</th></tr></thead>
                    <tbody>{runs.get().into_iter().map(|r| view! {
                        <tr><td>{r.due}</td><td>{r.started_at}</td><td>{r.outcome.map(|o| o.to_string()).unwrap_or_else(|| "running".into())}</td><td>{r.duration_ms.map(|d| d.to_string()).unwrap_or_default()}</td></tr>
                    }).collect_view()}</tbody>
                </table>
            })}
        </div>
    }
}

/// The scripts of one kind (`api`, `job`, `shared`): a list, a new-name box, and the selected one.
#[component]
pub fn Scripts(tenant: String, kind: &'static str, selected: Option<String>) -> impl IntoView {
    let list = RwSignal::new(None::<Vec<ScriptOut>>);
    let note = RwSignal::new(Note::None);
    let t = StoredValue::new(tenant.clone());
    let ctx = expect_context::<Ctx>();
    // Loads the list, and again whenever a script is saved or deleted.
    Effect::new(move |_| {
        ctx.scripts_changed.track();
        crate::spawn(async move {
            match api::get::<Vec<ScriptOut>>(&format!("/tenants/{}/scripts", api::enc(&t.get_value()))).await {
                Ok(v) => list.set(Some(v.into_iter().filter(|s| s.kind == kind).collect())),
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    });
    let tab = match kind {
        "api" => "api",
        "job" => "scheduler",
        _ => "shared",
    };
    let (title, what) = match kind {
        "api" => ("Custom APIs", "API"),
        "job" => ("Scheduled jobs", "job"),
        _ => ("Shared modules", "module"),
    };
    let new_name = RwSignal::new(String::new());
    let open_new = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let n = new_name.get_untracked().trim().to_string();
        if !n.is_empty() {
            crate::navigate(&format!("/t/{}/{}/{}", t.get_value(), tab, n));
        }
    };
    view! {
        <div class="scripts">
            <aside>
                <h2>{title}</h2>
                <NoteLine note=note/>
                {move || list.get().map(|v| view! {
                    <ul class="script-list">{v.into_iter().map(|s| view! { <li><a href=format!("#/t/{}/{}/{}", t.get_value(), tab, s.name)>{s.name.clone()}</a></li> }).collect_view()}</ul>
                })}
                <form on:submit=open_new>
                    <input name="new-script" placeholder=format!("new {what} name") prop:value=new_name on:input=move |ev| new_name.set(event_target_value(&ev))/>
                    <button type="submit">{format!("New {what}")}</button>
                </form>
            </aside>
            <div class="script-main">
                {match selected {
                    Some(name) => view! { <h3>{name.clone()}</h3><ScriptPane tenant=tenant.clone() kind=kind name=name/> }.into_any(),
                    None => view! { <p class="empty">{format!("Pick a {what}, or name a new one.")}</p> }.into_any(),
                }}
            </div>
        </div>
    }
}
