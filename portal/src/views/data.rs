//! The Data tab: tables, and per table Browse, Columns, Permissions and Script.

use super::scripts::ScriptPane;
use super::{Note, NoteLine};
use crate::{api, Ctx};
use leptos::prelude::*;
use roost_api::{ColumnIn, IdKind, Permission, TableIn, TableOut, TablePermissions};
use serde_json::{Map, Value};

/// Tables of a tenant; `rest` = `[table, subtab, …]`.
#[component]
pub fn Data(tenant: String, rest: Vec<String>) -> impl IntoView {
    match rest.first().cloned() {
        Some(table) => {
            view! { <Table tenant=tenant table=table sub=rest.get(1).cloned().unwrap_or_else(|| "browse".into()) extra=rest.get(2).cloned()/> }.into_any()
        }
        None => view! { <Tables tenant=tenant/> }.into_any(),
    }
}

#[component]
fn Tables(tenant: String) -> impl IntoView {
    let list = RwSignal::new(None::<Vec<TableOut>>);
    let note = RwSignal::new(Note::None);
    let t = StoredValue::new(tenant.clone());
    let reload = move || {
        crate::spawn(async move {
            match api::get::<Vec<TableOut>>(&format!("/tenants/{}/tables", api::enc(&t.get_value()))).await {
                Ok(v) => list.set(Some(v)),
                Err(e) => note.set(Note::Err(e.message)),
            }
        })
    };
    reload();
    let name = RwSignal::new(String::new());
    let id_kind = RwSignal::new("string".to_string());
    let soft = RwSignal::new(false);
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let spec = TableIn {
            name: name.get_untracked().trim().to_string(),
            id_kind: if id_kind.get_untracked() == "integer" { IdKind::Integer } else { IdKind::String },
            soft_delete: soft.get_untracked(),
            permissions: TablePermissions::default(),
        };
        crate::spawn(async move {
            match api::call::<TableOut>("POST", &format!("/tenants/{}/tables", api::enc(&t.get_value())), Some(&spec)).await {
                Ok(tb) => {
                    note.set(Note::Ok(format!("Created table {}", tb.name)));
                    name.set(String::new());
                    reload();
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    view! {
        <h2>"Tables"</h2>
        <NoteLine note=note/>
        <form class="inline" on:submit=create>
            <input name="table-name" placeholder="new table name" required prop:value=name on:input=move |ev| name.set(event_target_value(&ev))/>
            <label>"Id " <select name="id-kind" on:change=move |ev| id_kind.set(event_target_value(&ev))>
                <option value="string" selected>"string"</option>
                <option value="integer">"integer"</option>
            </select></label>
            <label><input type="checkbox" name="soft-delete" prop:checked=soft on:change=move |ev| soft.set(event_target_checked(&ev))/>" soft delete"</label>
            <button type="submit">"Create table"</button>
        </form>
        {move || match list.get() {
            None => view! { <p class="loading">"Loading tables…"</p> }.into_any(),
            Some(v) if v.is_empty() => view! { <p class="empty">"No tables yet."</p> }.into_any(),
            Some(v) => view! {
                <table class="grid" id="table-list">
                    <thead><tr><th>"Table"</th><th>"Id"</th><th>"Soft delete"</th><th>"Insert"</th><th>"Read"</th><th>"Update"</th><th>"Delete"</th></tr></thead>
                    <tbody>{v.into_iter().map(|tb| view! {
                        <tr>
                            <td><a href=format!("#/t/{}/data/{}", t.get_value(), tb.name)>{tb.name.clone()}</a></td>
                            <td>{format!("{:?}", tb.id_kind).to_lowercase()}</td>
                            <td>{if tb.soft_delete { "yes" } else { "no" }}</td>
                            <td>{tb.permissions.insert.as_str()}</td>
                            <td>{tb.permissions.read.as_str()}</td>
                            <td>{tb.permissions.update.as_str()}</td>
                            <td>{tb.permissions.delete.as_str()}</td>
                        </tr>
                    }).collect_view()}</tbody>
                </table>
            }.into_any(),
        }}
    }
}

#[component]
fn Table(tenant: String, table: String, sub: String, extra: Option<String>) -> impl IntoView {
    let base = format!("#/t/{}/data/{}", tenant, table);
    let tabs = [("browse", "Browse"), ("columns", "Columns"), ("permissions", "Permissions"), ("script", "Script")]
        .into_iter()
        .map(|(id, label)| {
            let class = if id == sub { "tab active" } else { "tab" };
            view! { <a class=class href=format!("{base}/{id}")>{label}</a> }
        })
        .collect_view();
    let body = match sub.as_str() {
        "columns" => view! { <Columns tenant=tenant.clone() table=table.clone()/> }.into_any(),
        "permissions" => view! { <Permissions tenant=tenant.clone() table=table.clone()/> }.into_any(),
        "script" => {
            let op = extra.unwrap_or_else(|| "insert".into());
            let ops = ["insert", "read", "update", "delete"]
                .into_iter()
                .map(|o| {
                    let class = if o == op { "tab active" } else { "tab" };
                    view! { <a class=class href=format!("{base}/script/{o}")>{o}</a> }
                })
                .collect_view();
            let name = format!("{table}.{op}");
            view! { <nav class="tabs small">{ops}</nav><ScriptPane tenant=tenant.clone() kind="table" name=name/> }.into_any()
        }
        _ => view! { <Browse tenant=tenant.clone() table=table.clone()/> }.into_any(),
    };
    view! {
        <h2><a href=format!("#/t/{}/data", tenant)>"Tables"</a>" / " {table.clone()}</h2>
        <nav class="tabs">{tabs}</nav>
        <div class="table-body">{body}</div>
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Rows with paging, an OData filter, sort, and insert/edit/delete (through the tenant pipeline,
/// without scripts).
#[component]
fn Browse(tenant: String, table: String) -> impl IntoView {
    const PAGE: usize = 20;
    let path = StoredValue::new(format!("/tenants/{}/tables/{}/rows", api::enc(&tenant), api::enc(&table)));
    let filter = RwSignal::new(String::new());
    let order = RwSignal::new(String::new());
    let skip = RwSignal::new(0usize);
    let rows = RwSignal::new(None::<(Vec<Map<String, Value>>, u64)>);
    let note = RwSignal::new(Note::None);
    let load = crate::in_view(move || {
        let mut q = format!("?$top={PAGE}&$skip={}&$inlinecount=allpages&__systemproperties=*", skip.get_untracked());
        let f = filter.get_untracked();
        if !f.trim().is_empty() {
            q += &format!("&$filter={}", api::enc(f.trim()));
        }
        let o = order.get_untracked();
        if !o.trim().is_empty() {
            q += &format!("&$orderby={}", api::enc(o.trim()));
        }
        crate::spawn(async move {
            match api::get::<Value>(&format!("{}{q}", path.get_value())).await {
                Ok(v) => {
                    let count = v.get("count").and_then(Value::as_u64).unwrap_or(0);
                    let list = v.get("results").and_then(Value::as_array).cloned().unwrap_or_default();
                    rows.set(Some((list.into_iter().filter_map(|r| r.as_object().cloned()).collect(), count)));
                    if matches!(note.get_untracked(), Note::Busy(_)) {
                        note.set(Note::None);
                    }
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    });
    load();
    let editing = RwSignal::new(None::<(Option<String>, String)>); // (id or None for insert, JSON text)
    let save = move |_| {
        let Some((id, text)) = editing.get_untracked() else { return };
        let mut item: Map<String, Value> = match serde_json::from_str(&text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return note.set(Note::Err("The row must be a JSON object.".into())),
            Err(e) => return note.set(Note::Err(format!("Not JSON: {e}"))),
        };
        item.retain(|k, _| !k.starts_with("__") && (id.is_none() || k != "id"));
        crate::spawn(async move {
            let r = match &id {
                Some(id) => api::call::<Value>("PATCH", &format!("{}/{}", path.get_value(), api::enc(id)), Some(&item)).await,
                None => api::call::<Value>("POST", &path.get_value(), Some(&item)).await,
            };
            match r {
                Ok(_) => {
                    note.set(Note::Ok(if id.is_some() { "Row saved".into() } else { "Row inserted".into() }));
                    editing.set(None);
                    load();
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    let delete = move |id: String| {
        if !window().confirm_with_message(&format!("Delete row {id}?")).unwrap_or(false) {
            return;
        }
        crate::spawn(async move {
            match api::send("DELETE", &format!("{}/{}", path.get_value(), api::enc(&id)), None::<&()>).await {
                Ok(()) => {
                    note.set(Note::Ok(format!("Deleted row {id}")));
                    load();
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    let search = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        skip.set(0);
        note.set(Note::Busy("Loading…".into()));
        load();
    };
    view! {
        <form class="inline browse-query" on:submit=search>
            <input name="filter" class="wide" placeholder="$filter, e.g. done eq false and priority gt 2" prop:value=filter on:input=move |ev| filter.set(event_target_value(&ev))/>
            <input name="orderby" placeholder="$orderby, e.g. priority desc" prop:value=order on:input=move |ev| order.set(event_target_value(&ev))/>
            <button type="submit">"Apply"</button>
            <button type="button" on:click=move |_| editing.set(Some((None, "{\n  \n}".into())))>"Insert row"</button>
        </form>
        <NoteLine note=note/>
        {move || editing.get().map(|(id, text)| view! {
            <div class="row-editor">
                <h3>{match &id { Some(id) => format!("Edit row {id}"), None => "New row".to_string() }}</h3>
                <textarea name="row-json" rows="8" prop:value=text on:input=move |ev| editing.update(|e| if let Some(e) = e { e.1 = event_target_value(&ev) })></textarea>
                <button on:click=save>"Save row"</button>
                <button on:click=move |_| editing.set(None)>"Cancel"</button>
            </div>
        })}
        {move || match rows.get() {
            None => view! { <p class="loading">"Loading rows…"</p> }.into_any(),
            Some((list, count)) => {
                let mut columns: Vec<String> = vec!["id".into()];
                for r in &list {
                    for k in r.keys() {
                        if !columns.contains(k) {
                            columns.push(k.clone());
                        }
                    }
                }
                let head = columns.iter().map(|c| view! { <th>{c.clone()}</th> }).collect_view();
                let body = list.into_iter().map(|r| {
                    let id = cell(r.get("id").unwrap_or(&Value::Null));
                    let (id_edit, id_del) = (id.clone(), id.clone());
                    let json = serde_json::to_string_pretty(&Value::Object(r.clone())).unwrap_or_default();
                    let cells = columns.iter().map(|c| view! { <td>{r.get(c).map(cell).unwrap_or_default()}</td> }).collect_view();
                    view! {
                        <tr>
                            {cells}
                            <td class="actions">
                                <button class="small" on:click=move |_| editing.set(Some((Some(id_edit.clone()), json.clone())))>"Edit"</button>
                                <button class="small danger" on:click=move |_| delete(id_del.clone())>"Delete"</button>
                            </td>
                        </tr>
                    }
                }).collect_view();
                let from = skip.get_untracked();
                view! {
                    <p class="paging">
                        {format!("{count} rows · showing {}–{}", if count == 0 { 0 } else { from + 1 }, (from + PAGE).min(count as usize))}
                        <button class="small" disabled={move || skip.get() == 0} on:click=move |_| { skip.update(|s| *s = s.saturating_sub(PAGE)); load(); }>"Previous"</button>
                        <button class="small" disabled={move || skip.get() + PAGE >= count as usize} on:click=move |_| { skip.update(|s| *s += PAGE); load(); }>"Next"</button>
                    </p>
                    <div class="scroll"><table class="grid" id="rows"><thead><tr>{head}<th></th></tr></thead><tbody>{body}</tbody></table></div>
                }.into_any()
            }
        }}
    }
}

#[component]
fn Columns(tenant: String, table: String) -> impl IntoView {
    let path = StoredValue::new(format!("/tenants/{}/tables/{}", api::enc(&tenant), api::enc(&table)));
    let info = RwSignal::new(None::<TableOut>);
    let note = RwSignal::new(Note::None);
    crate::spawn(async move {
        match api::get::<TableOut>(&path.get_value()).await {
            Ok(t) => info.set(Some(t)),
            Err(e) => note.set(Note::Err(e.message)),
        }
    });
    let name = RwSignal::new(String::new());
    let ty = RwSignal::new("string".to_string());
    let add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let c = ColumnIn { name: name.get_untracked().trim().to_string(), ty: ty.get_untracked() };
        crate::spawn(async move {
            match api::call::<TableOut>("POST", &format!("{}/columns", path.get_value()), Some(&c)).await {
                Ok(t) => {
                    note.set(Note::Ok(format!("Added column {}", c.name)));
                    name.set(String::new());
                    info.set(Some(t));
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    let drop_column = move |c: String| {
        if !window().confirm_with_message(&format!("Drop column {c} and its values?")).unwrap_or(false) {
            return;
        }
        crate::spawn(async move {
            match api::call::<TableOut>("DELETE", &format!("{}/columns/{}", path.get_value(), api::enc(&c)), None::<&()>).await {
                Ok(t) => {
                    note.set(Note::Ok(format!("Dropped column {c}")));
                    info.set(Some(t));
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    view! {
        <NoteLine note=note/>
        <form class="inline" on:submit=add>
            <input name="column-name" placeholder="new column" required prop:value=name on:input=move |ev| name.set(event_target_value(&ev))/>
            <select name="column-type" on:change=move |ev| ty.set(event_target_value(&ev))>
                <option value="string" selected>"string"</option>
                <option value="number">"number"</option>
                <option value="boolean">"boolean"</option>
                <option value="date">"date"</option>
            </select>
            <button type="submit">"Add column"</button>
        </form>
        {move || info.get().map(|t| view! {
            <table class="grid" id="columns">
                <thead><tr><th>"Column"</th><th>"Type"</th><th>"Indexed"</th><th></th></tr></thead>
                <tbody>{t.columns.iter().map(|c| {
                    let n = c.name.clone();
                    let indexed = t.indexes.iter().any(|i| i.eq_ignore_ascii_case(&c.name));
                    view! {
                        <tr>
                            <td>{c.name.clone()}</td>
                            <td>{c.ty.clone()}</td>
                            <td>{if indexed { "yes" } else { "" }}</td>
                            <td>{(!c.system && c.name != "id").then(|| view! { <button class="small danger" on:click=move |_| drop_column(n.clone())>"Drop"</button> })}</td>
                        </tr>
                    }
                }).collect_view()}</tbody>
            </table>
        })}
    }
}

fn permission_select(label: &'static str, value: RwSignal<Permission>) -> impl IntoView {
    let options = [Permission::Public, Permission::Application, Permission::User, Permission::Admin]
        .into_iter()
        .map(|p| {
            let text = match p {
                Permission::Public => "Everyone",
                Permission::Application => "Anybody with the application key",
                Permission::User => "Only authenticated users",
                Permission::Admin => "Only scripts and admins",
            };
            view! { <option value=p.as_str() selected={move || value.get() == p}>{text}</option> }
        })
        .collect_view();
    view! {
        <label class="permission">{label}
            <select name=format!("perm-{}", label.to_lowercase()) on:change=move |ev| if let Some(p) = Permission::parse(&event_target_value(&ev)) { value.set(p) }>{options}</select>
        </label>
    }
}

#[component]
fn Permissions(tenant: String, table: String) -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let path = StoredValue::new(format!("/tenants/{}/tables/{}", api::enc(&tenant), api::enc(&table)));
    let note = RwSignal::new(Note::None);
    let loaded = RwSignal::new(false);
    let (insert, read, update, delete) = (
        RwSignal::new(Permission::Application),
        RwSignal::new(Permission::Application),
        RwSignal::new(Permission::Application),
        RwSignal::new(Permission::Application),
    );
    crate::spawn(async move {
        match api::get::<TableOut>(&path.get_value()).await {
            Ok(t) => {
                insert.set(t.permissions.insert);
                read.set(t.permissions.read);
                update.set(t.permissions.update);
                delete.set(t.permissions.delete);
                loaded.set(true);
            }
            Err(e) => note.set(Note::Err(e.message)),
        }
    });
    let save = move |_| {
        let p = TablePermissions { insert: insert.get_untracked(), read: read.get_untracked(), update: update.get_untracked(), delete: delete.get_untracked() };
        crate::spawn(async move {
            match api::call::<TableOut>("PUT", &format!("{}/permissions", path.get_value()), Some(&p)).await {
                Ok(_) => {
                    ctx.dirty.set(false);
                    note.set(Note::Ok("Permissions saved".into()));
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    view! {
        <NoteLine note=note/>
        {move || loaded.get().then(|| view! {
            <div class="permissions" on:change=move |_| ctx.dirty.set(true)>
                {permission_select("Insert", insert)}
                {permission_select("Read", read)}
                {permission_select("Update", update)}
                {permission_select("Delete", delete)}
            </div>
            <button on:click=save>"Save permissions"</button>
        })}
    }
}
