//! Sign-in.

use super::{Note, NoteLine};
use crate::{api, Ctx};
use leptos::prelude::*;
use roost_api::{SessionOut, SignInIn};

/// The sign-in form.
#[component]
pub fn SignIn() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let note = RwSignal::new(Note::None);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        note.set(Note::Busy("Signing in…".into()));
        let body = SignInIn { email: email.get_untracked(), password: password.get_untracked() };
        crate::spawn(async move {
            match api::call::<SessionOut>("POST", "/session", Some(&body)).await {
                Ok(s) => {
                    api::set_session(ctx.session, s.csrf_token.as_deref());
                    password.set(String::new());
                    ctx.session.set(Some(s));
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    view! {
        <section class="signin">
            <h1>"Roost"</h1>
            <form on:submit=submit>
                <label>"E-mail" <input type="email" name="email" autocomplete="username" required prop:value=email on:input=move |ev| email.set(event_target_value(&ev))/></label>
                <label>"Password" <input type="password" name="password" autocomplete="current-password" required prop:value=password on:input=move |ev| password.set(event_target_value(&ev))/></label>
                <button type="submit">"Sign in"</button>
            </form>
            <NoteLine note=note/>
        </section>
    }
}
