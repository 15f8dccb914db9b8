//! The Logs tab (filters, paging, live tail) and the Monitor tab support staff watch.

use super::{Note, NoteLine};
use crate::api;
use leptos::prelude::*;
use roost_api::{LogOut, MonitorOut};

/// Script logs of a tenant, newest first.
#[component]
pub fn Logs(tenant: String) -> impl IntoView {
    const PAGE: usize = 50;
    let path = StoredValue::new(format!("/tenants/{}/logs", api::enc(&tenant)));
    let lines = RwSignal::new(None::<Vec<LogOut>>);
    let note = RwSignal::new(Note::None);
    let level = RwSignal::new(String::new());
    let source = RwSignal::new(String::new());
    let text = RwSignal::new(String::new());
    let since = RwSignal::new(String::new());
    let until = RwSignal::new(String::new());
    let more = RwSignal::new(false);
    let tail = RwSignal::new(false);
    let filters = move || {
        let mut q = String::new();
        for (k, s) in [("level", level), ("source", source), ("q", text)] {
            let v = s.get_untracked();
            if !v.trim().is_empty() {
                q += &format!("&{k}={}", api::enc(v.trim()));
            }
        }
        // datetime-local inputs give local times without a zone; the API takes UTC.
        for (k, s) in [("since", since), ("until", until)] {
            let v = s.get_untracked();
            if !v.is_empty() {
                let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(&v));
                if let Some(iso) = d.to_iso_string().as_string() {
                    q += &format!("&{k}={}", api::enc(&iso));
                }
            }
        }
        q
    };
    // Newest first; `before` pages to older lines.
    let load = move |before: Option<i64>| {
        let mut q = format!("?order=desc&limit={PAGE}{}", filters());
        if let Some(b) = before {
            q += &format!("&before={b}");
        }
        crate::spawn(async move {
            match api::get::<Vec<LogOut>>(&format!("{}{q}", path.get_value())).await {
                Ok(v) => {
                    more.set(v.len() == PAGE);
                    if before.is_some() {
                        lines.update(|l| l.get_or_insert_with(Vec::new).extend(v));
                    } else {
                        lines.set(Some(v));
                    }
                    if matches!(note.get_untracked(), Note::Busy(_)) {
                        note.set(Note::None);
                    }
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    load(None);
    // Live tail: server-sent events from `/logs/stream` (lines of every node as they are stored),
    // from the newest line shown; the browser reconnects with Last-Event-ID by itself.
    let stream = StoredValue::new_local(None::<web_sys::EventSource>);
    let stop_tail = move || {
        if let Some(Some(es)) = stream.try_update_value(|s| s.take()) {
            es.close();
        }
    };
    Effect::new(move |_| {
        let on = tail.get();
        stop_tail();
        if !on {
            return;
        }
        let newest = lines.with_untracked(|l| l.as_ref().and_then(|l| l.first()).map(|l| l.id).unwrap_or(0));
        let url = format!("/manage/v1{}/stream?after={newest}{}", path.get_value(), filters());
        let Ok(es) = web_sys::EventSource::new(&url) else { return };
        let on_line = wasm_bindgen::closure::Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
            let Some(text) = ev.data().as_string() else { return };
            if let Ok(line) = serde_json::from_str::<LogOut>(&text) {
                lines.try_update(|l| {
                    let l = l.get_or_insert_with(Vec::new);
                    if !l.iter().any(|x| x.id == line.id) {
                        l.insert(0, line);
                    }
                });
            }
        });
        let _ = es.add_event_listener_with_callback("line", wasm_bindgen::JsCast::unchecked_ref(on_line.as_ref()));
        on_line.forget();
        stream.set_value(Some(es));
    });
    on_cleanup(stop_tail);
    let search = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        note.set(Note::Busy("Loading…".into()));
        load(None);
    };
    view! {
        <form class="inline log-filters" on:submit=search>
            <select name="level" on:change=move |ev| level.set(event_target_value(&ev))>
                <option value="">"all levels"</option>
                <option value="information">"information"</option>
                <option value="warning">"warning"</option>
                <option value="error">"error"</option>
            </select>
            <input name="source" placeholder="source, e.g. /table/todo.insert.js" prop:value=source on:input=move |ev| source.set(event_target_value(&ev))/>
            <input name="text" placeholder="text" prop:value=text on:input=move |ev| text.set(event_target_value(&ev))/>
            <label>"from " <input type="datetime-local" name="since" prop:value=since on:input=move |ev| since.set(event_target_value(&ev))/></label>
            <label>"to " <input type="datetime-local" name="until" prop:value=until on:input=move |ev| until.set(event_target_value(&ev))/></label>
            <button type="submit">"Search"</button>
            <label class="check"><input type="checkbox" name="tail" prop:checked=tail on:change=move |ev| tail.set(event_target_checked(&ev))/>" live tail"</label>
        </form>
        <NoteLine note=note/>
        {move || match lines.get() {
            None => view! { <p class="loading">"Loading logs…"</p> }.into_any(),
            Some(v) if v.is_empty() => view! { <p class="empty">"No log lines."</p> }.into_any(),
            Some(v) => view! {
                <table class="grid logs" id="logs">
                    <thead><tr><th>"Time"</th><th>"Level"</th><th>"Source"</th><th>"Message"</th></tr></thead>
                    <tbody>{v.into_iter().map(|l| { let class = format!("level-{}", l.level); view! {
                        <tr class=class><td class="time">{l.time}</td><td>{l.level.as_str()}</td><td>{l.source}</td><td class="message">{l.message}</td></tr>
                    } }).collect_view()}</tbody>
                </table>
            }.into_any(),
        }}
        {move || more.get().then(|| view! {
            <button on:click=move |_| load(lines.with_untracked(|l| l.as_ref().and_then(|l| l.last()).map(|l| l.id)))>"Older"</button>
        })}
    }
}

/// Counts, jobs and recent log levels of a tenant.
#[component]
pub fn Monitor(tenant: String) -> impl IntoView {
    let data = RwSignal::new(None::<MonitorOut>);
    let note = RwSignal::new(Note::None);
    let path = format!("/tenants/{}/monitor", api::enc(&tenant));
    crate::spawn(async move {
        match api::get::<MonitorOut>(&path).await {
            Ok(m) => data.set(Some(m)),
            Err(e) => note.set(Note::Err(e.message)),
        }
    });
    view! {
        <NoteLine note=note/>
        {move || data.get().map(|m| view! {
            <div class="monitor" id="monitor">
                <div class="tile"><span class="figure">{m.tables}</span>" tables"</div>
                <div class="tile"><span class="figure">{m.scripts}</span>" scripts"</div>
                {m.recent_log_levels.into_iter().map(|(l, n)| view! { <div class=format!("tile level-{l}")><span class="figure">{n}</span>{format!(" {l}")}</div> }).collect_view()}
            </div>
            <h3>"Jobs"</h3>
            <table class="grid">
                <thead><tr><th>"Job"</th><th>"Enabled"</th><th>"Last run"</th><th>"Outcome"</th></tr></thead>
                <tbody>{m.jobs.into_iter().map(|j| view! {
                    <tr>
                        <td>{j.name}</td>
                        <td>{if j.enabled { "yes" } else { "no" }}</td>
                        <td>{j.last_run.as_ref().map(|r| r.started_at.clone()).unwrap_or_default()}</td>
                        <td>{j.last_run.and_then(|r| r.outcome).map(|o| o.to_string()).unwrap_or_default()}</td>
                    </tr>
                }).collect_view()}</tbody>
            </table>
        })}
    }
}
