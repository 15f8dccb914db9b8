//! Roost's portal: a Leptos app rendered client-side, calling `/manage/v1` with the session cookie.
//! Routes live in the URL fragment (`#/t/{tenant}/{tab}/…`), so `/portal/` is one static page.

mod api;
mod editor;
mod views;

use leptos::prelude::*;
use roost_api::{Role, SessionOut};
use wasm_bindgen::prelude::*;

/// What every view may use.
#[derive(Clone, Copy)]
pub struct Ctx {
    /// The signed-in account (`None`: the sign-in page).
    pub session: RwSignal<Option<SessionOut>>,
    /// The fragment route, split on `/`.
    pub route: RwSignal<Vec<String>>,
    /// An editor or form holds unsaved changes.
    pub dirty: RwSignal<bool>,
    /// Bumped when a script is saved or deleted (lists reload).
    pub scripts_changed: RwSignal<u32>,
}

impl Ctx {
    /// The signed-in role.
    pub fn role(&self) -> Option<Role> {
        self.session.with(|s| s.as_ref().map(|s| s.account.role))
    }
}

/// The current fragment route.
fn current_route() -> Vec<String> {
    let hash = window().location().hash().unwrap_or_default();
    hash.trim_start_matches('#')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| js_sys::decode_uri_component(s).ok().and_then(|v| v.as_string()).unwrap_or_default())
        .collect()
}

/// Runs a request's future under the current reactive owner, cancelled when that owner (the view
/// that started it) is disposed, so an answer arriving after navigation never touches a dead view.
pub fn spawn(fut: impl std::future::Future<Output = ()> + 'static) {
    leptos::task::spawn_local_scoped_with_cancellation(fut);
}

/// Wraps `f` so it always runs under the owner current now (the view's), even when called from a
/// nested block that is disposed before the request `f` starts has answered (a reload after a
/// dialog closes, say). Does nothing once the view itself is gone.
pub fn in_view(f: impl Fn() + Copy + Send + Sync + 'static) -> impl Fn() + Copy + Send + Sync + 'static {
    let owner = StoredValue::new(Owner::current());
    move || {
        if let Some(Some(o)) = owner.try_get_value() {
            o.with(f);
        }
    }
}

/// Goes to a route (asks first when there are unsaved changes).
pub fn navigate(path: &str) {
    let _ = window().location().set_hash(path);
}

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

#[component]
fn App() -> impl IntoView {
    let ctx = Ctx { session: RwSignal::new(None), route: RwSignal::new(current_route()), dirty: RwSignal::new(false), scripts_changed: RwSignal::new(0) };
    provide_context(ctx);
    let checked = RwSignal::new(false);
    // An existing session (cookie) signs in without the form.
    crate::spawn(async move {
        if let Ok(s) = api::get::<SessionOut>("/session").await {
            api::set_session(ctx.session, s.csrf_token.as_deref());
            ctx.session.set(Some(s));
        }
        checked.set(true);
    });
    let last = StoredValue::new(window().location().hash().unwrap_or_default());
    let _hash = window_event_listener(leptos::ev::hashchange, move |_| {
        let hash = window().location().hash().unwrap_or_default();
        if ctx.dirty.get_untracked() && hash != last.get_value() {
            let leave = window().confirm_with_message("You have unsaved changes. Leave this page and lose them?").unwrap_or(false);
            if !leave {
                let _ = window().location().set_hash(&last.get_value());
                return;
            }
            ctx.dirty.set(false);
        }
        last.set_value(hash);
        ctx.route.set(current_route());
    });
    let _unload = window_event_listener(leptos::ev::beforeunload, move |ev| {
        if ctx.dirty.get_untracked() {
            ev.prevent_default();
            ev.set_return_value("You have unsaved changes.");
        }
    });
    view! {
        {move || {
            if !checked.get() {
                view! { <p class="loading">"Loading…"</p> }.into_any()
            } else if ctx.session.with(Option::is_none) {
                view! { <views::signin::SignIn/> }.into_any()
            } else {
                view! { <views::Shell/> }.into_any()
            }
        }}
    }
}
