//! The Push tab: the tenant's credentials (the Web Push public key, rotatable; FCM and APNs, whose
//! keys are write-only and never shown back), its registrations (filtered by platform, tag or user,
//! deletable), "send a test notification" to a tag expression or one registration with its status
//! live, and the recent sends with their counts.

use super::{Note, NoteLine};
use crate::{api, Ctx};
use leptos::prelude::*;
use roost_api::{ApnsCredentialsIn, ApnsEnvironment, FcmCredentialsIn, PushOut, PushSendOut, PushTestIn, RegistrationOut};

fn counts(s: &PushSendOut) -> String {
    format!(
        "{} queued · {} delivered · {} retried · {} expired · {} failed · {} pruned · {} waiting",
        s.queued, s.delivered, s.retried, s.expired, s.failed, s.pruned, s.waiting
    )
}

/// Live status: the send's counts each second until nothing waits (at most `left` times), then the
/// recent sends again.
fn follow(base: StoredValue<String>, id: String, status: RwSignal<Option<PushSendOut>>, sends: RwSignal<Vec<PushSendOut>>, left: u32) {
    set_timeout(
        move || {
            crate::spawn(async move {
                let done = match api::get::<PushSendOut>(&format!("{}/sends/{}", base.get_value(), api::enc(&id))).await {
                    Ok(now) => {
                        let done = now.waiting == 0;
                        status.set(Some(now));
                        done
                    }
                    Err(_) => true,
                };
                if done || left == 0 {
                    if let Ok(s) = api::get::<Vec<PushSendOut>>(&format!("{}/sends?limit=20", base.get_value())).await {
                        sends.set(s);
                    }
                } else {
                    follow(base, id, status, sends, left - 1);
                }
            });
        },
        std::time::Duration::from_millis(1000),
    );
}

/// The push settings and state of a tenant.
#[component]
pub fn Push(tenant: String) -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let base = StoredValue::new(format!("/tenants/{}/push", api::enc(&tenant)));
    let note = RwSignal::new(Note::None);
    let shown = RwSignal::new(None::<PushOut>);
    let registrations = RwSignal::new(Vec::<RegistrationOut>::new());
    let sends = RwSignal::new(Vec::<PushSendOut>::new());
    let (platform, tag, user) = (RwSignal::new(String::new()), RwSignal::new(String::new()), RwSignal::new(String::new()));
    let service_account = RwSignal::new(String::new());
    let (apns_key, key_id, team_id, topic, sandbox) =
        (RwSignal::new(String::new()), RwSignal::new(String::new()), RwSignal::new(String::new()), RwSignal::new(String::new()), RwSignal::new(false));
    let (test_target, test_message, test_status) =
        (RwSignal::new(String::new()), RwSignal::new("Hello from Roost".to_string()), RwSignal::new(None::<PushSendOut>));

    let load = move || {
        crate::spawn(async move {
            match api::get::<PushOut>(&base.get_value()).await {
                Ok(p) => {
                    if let Some(a) = &p.apns {
                        key_id.set(a.key_id.clone());
                        team_id.set(a.team_id.clone());
                        topic.set(a.topic.clone());
                        sandbox.set(a.environment == ApnsEnvironment::Sandbox);
                    }
                    shown.set(Some(p));
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    let search = move || {
        let q = [("platform", platform.get_untracked()), ("tag", tag.get_untracked()), ("user", user.get_untracked())]
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| format!("{k}={}", api::enc(v.trim())))
            .collect::<Vec<_>>()
            .join("&");
        crate::spawn(async move {
            match api::get::<Vec<RegistrationOut>>(&format!("{}/registrations?{q}", base.get_value())).await {
                Ok(r) => registrations.set(r),
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    let load_sends = move || {
        crate::spawn(async move {
            if let Ok(s) = api::get::<Vec<PushSendOut>>(&format!("{}/sends?limit=20", base.get_value())).await {
                sends.set(s);
            }
        });
    };
    load();
    search();
    load_sends();

    let rotate = move |_| {
        if !window().confirm_with_message("Make a new Web Push key pair? Every browser must subscribe again.").unwrap_or(false) {
            return;
        }
        crate::spawn(async move {
            match api::call::<PushOut>("POST", &format!("{}/vapid/rotate", base.get_value()), None::<&()>).await {
                Ok(p) => {
                    note.set(Note::Ok("A new Web Push key pair is in use".into()));
                    shown.set(Some(p));
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    let save_fcm = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let input = FcmCredentialsIn { service_account: service_account.get_untracked() };
        crate::spawn(async move {
            match api::send("PUT", &format!("{}/fcm", base.get_value()), Some(&input)).await {
                Ok(()) => {
                    note.set(Note::Ok("FCM credentials saved".into()));
                    service_account.set(String::new());
                    ctx.dirty.set(false);
                    load();
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    let save_apns = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let input = ApnsCredentialsIn {
            // Left empty on a change: the stored key is kept.
            key: Some(apns_key.get_untracked()).filter(|k| !k.trim().is_empty()),
            key_id: key_id.get_untracked().trim().to_string(),
            team_id: team_id.get_untracked().trim().to_string(),
            topic: topic.get_untracked().trim().to_string(),
            environment: if sandbox.get_untracked() { ApnsEnvironment::Sandbox } else { ApnsEnvironment::Production },
        };
        crate::spawn(async move {
            match api::send("PUT", &format!("{}/apns", base.get_value()), Some(&input)).await {
                Ok(()) => {
                    note.set(Note::Ok("APNs credentials saved".into()));
                    apns_key.set(String::new());
                    ctx.dirty.set(false);
                    load();
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    let remove = move |which: &'static str| {
        if !window().confirm_with_message(&format!("Remove the {which} credentials? Sends to those devices stop.")).unwrap_or(false) {
            return;
        }
        crate::spawn(async move {
            match api::send("DELETE", &format!("{}/{which}", base.get_value()), None::<&()>).await {
                Ok(()) => {
                    note.set(Note::Ok(format!("Removed the {which} credentials")));
                    load();
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    let delete_registration = move |id: String| {
        crate::spawn(async move {
            match api::send("DELETE", &format!("{}/registrations/{}", base.get_value(), api::enc(&id)), None::<&()>).await {
                Ok(()) => {
                    note.set(Note::Ok(format!("Deleted registration {id}")));
                    search();
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    let send_test = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let target = test_target.get_untracked().trim().to_string();
        let one = registrations.get_untracked().iter().any(|r| r.registration_id == target);
        let input = PushTestIn {
            tags: (!one && !target.is_empty()).then(|| target.clone()),
            registration_id: one.then(|| target.clone()),
            message: test_message.get_untracked(),
        };
        crate::spawn(async move {
            match api::call::<PushSendOut>("POST", &format!("{}/test", base.get_value()), Some(&input)).await {
                Ok(s) => {
                    note.set(Note::Ok(format!("Test notification queued for {}", if target.is_empty() { "every registration" } else { &target })));
                    let id = s.id.clone();
                    test_status.set(Some(s));
                    follow(base, id, test_status, sends, 60);
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    on_cleanup(move || ctx.dirty.set(false));
    let text = move |label: &'static str, field: &'static str, sig: RwSignal<String>| {
        view! { <label>{label}<input name=field prop:value=sig on:input=move |ev| { sig.set(event_target_value(&ev)); ctx.dirty.set(true); }/></label> }
    };

    view! {
        <NoteLine note=note/>
        <section class="push-credentials">
            <h2>"Web Push"</h2>
            <p>"Public key (VAPID; pages subscribe with it, also at /push/vapidkey): "
                <code id="vapid-key">{move || shown.get().map(|p| p.vapid_public_key).unwrap_or_default()}</code></p>
            <p>{move || shown.get().map(|p| format!("{} registrations", p.registrations)).unwrap_or_default()}</p>
            <button on:click=rotate>"Rotate the key pair"</button>
        </section>
        <form class="push-fcm" on:submit=save_fcm>
            <h2>"FCM (HTTP v1)"</h2>
            <p id="fcm-status">{move || match shown.get().and_then(|p| p.fcm) {
                Some(f) => format!("Configured: project {}, {} (key {}), since {}", f.project_id, f.client_email, f.private_key_id, f.updated_at),
                None => "Not configured: FCM registrations are skipped.".to_string(),
            }}</p>
            <label>"Service account key file (JSON; never shown again)"<textarea name="service-account" rows="4" prop:value=service_account
                on:input=move |ev| { service_account.set(event_target_value(&ev)); ctx.dirty.set(true); }></textarea></label>
            <button type="submit" class="primary">"Save FCM credentials"</button>
            {move || shown.get().and_then(|p| p.fcm).map(|_| view! { <button type="button" class="danger" on:click=move |_| remove("fcm")>"Remove"</button> })}
        </form>
        <form class="push-apns" on:submit=save_apns>
            <h2>"APNs (token authentication)"</h2>
            <p id="apns-status">{move || match shown.get().and_then(|p| p.apns) {
                Some(a) => format!("Configured: key {} of team {}, topic {}, {}, since {}", a.key_id, a.team_id, a.topic,
                    if a.environment == ApnsEnvironment::Sandbox { "sandbox" } else { "production" }, a.updated_at),
                None => "Not configured: APNs registrations are skipped.".to_string(),
            }}</p>
            <label>"Signing key (.p8; leave empty to keep the stored one)"<textarea name="apns-key" rows="4" prop:value=apns_key
                on:input=move |ev| { apns_key.set(event_target_value(&ev)); ctx.dirty.set(true); }></textarea></label>
            {text("Key id", "apns-key-id", key_id)}
            {text("Team id", "apns-team-id", team_id)}
            {text("Topic (the app's bundle id)", "apns-topic", topic)}
            <label class="check"><input type="checkbox" name="apns-sandbox" prop:checked=sandbox on:change=move |ev| sandbox.set(event_target_checked(&ev))/>"Sandbox (development builds)"</label>
            <button type="submit" class="primary">"Save APNs credentials"</button>
            {move || shown.get().and_then(|p| p.apns).map(|_| view! { <button type="button" class="danger" on:click=move |_| remove("apns")>"Remove"</button> })}
        </form>
        <section class="push-registrations">
            <h2>"Registrations"</h2>
            <form class="filters" on:submit=move |ev: leptos::ev::SubmitEvent| { ev.prevent_default(); search(); }>
                <label>"Platform"<select name="platform" prop:value=platform on:change=move |ev| platform.set(event_target_value(&ev))>
                    <option value="">"any"</option><option value="webpush">"webpush"</option><option value="gcm">"gcm (FCM)"</option><option value="apns">"apns"</option>
                </select></label>
                <label>"Tag"<input name="tag" prop:value=tag on:input=move |ev| tag.set(event_target_value(&ev))/></label>
                <label>"User"<input name="user" prop:value=user on:input=move |ev| user.set(event_target_value(&ev))/></label>
                <button type="submit">"Filter"</button>
            </form>
            {move || if registrations.get().is_empty() {
                view! { <p id="no-registrations">"No registration matches."</p> }.into_any()
            } else {
                view! {
                    <table class="grid" id="registrations">
                        <thead><tr><th>"Id"</th><th>"Platform"</th><th>"Device"</th><th>"Tags"</th><th>"User"</th><th>"Created"</th><th></th></tr></thead>
                        <tbody>{registrations.get().into_iter().map(|r| {
                            let id = r.registration_id.clone();
                            let device: String = if r.device_id.chars().count() > 48 { format!("{}…", r.device_id.chars().take(48).collect::<String>()) } else { r.device_id.clone() };
                            view! {
                                <tr data-registration=r.registration_id.clone()>
                                    <td><code>{r.registration_id.clone()}</code></td>
                                    <td>{r.platform.clone()}</td>
                                    <td title=r.device_id.clone()><code>{device}</code></td>
                                    <td class="tags">{r.tags.join(", ")}</td>
                                    <td>{r.user_id.clone()}</td>
                                    <td>{r.created_at.clone()}</td>
                                    <td><button class="danger" on:click=move |_| delete_registration(id.clone())>"Delete"</button></td>
                                </tr>
                            }
                        }).collect_view()}</tbody>
                    </table>
                }.into_any()
            }}
        </section>
        <form class="push-test" on:submit=send_test>
            <h2>"Send a test notification"</h2>
            <label>"To (a tag expression, a registration id, or empty for all)"<input name="test-target" prop:value=test_target on:input=move |ev| test_target.set(event_target_value(&ev))/></label>
            <label>"Message"<input name="test-message" prop:value=test_message on:input=move |ev| test_message.set(event_target_value(&ev))/></label>
            <button type="submit" class="primary">"Send"</button>
            <p id="test-status" role="status">{move || test_status.get().map(|s| counts(&s)).unwrap_or_default()}</p>
        </form>
        <section class="push-sends">
            <h2>"Recent sends"</h2>
            <button on:click=move |_| load_sends()>"Refresh"</button>
            <table class="grid" id="sends">
                <thead><tr><th>"When"</th><th>"Platform"</th><th>"Tags"</th><th>"Queued"</th><th>"Delivered"</th><th>"Retried"</th><th>"Expired"</th><th>"Failed"</th><th>"Pruned"</th><th>"Waiting"</th></tr></thead>
                <tbody>{move || sends.get().into_iter().map(|s| view! {
                    <tr data-send=s.id.clone()>
                        <td>{s.created_at.clone()}</td><td>{s.platform.clone()}</td><td>{s.tags.clone()}</td>
                        <td>{s.queued}</td><td>{s.delivered}</td><td>{s.retried}</td><td>{s.expired}</td><td>{s.failed}</td><td>{s.pruned}</td><td>{s.waiting}</td>
                    </tr>
                }).collect_view()}</tbody>
            </table>
        </section>
    }
}
