//! The script editor: CodeMirror 6 (bundled from npm into `editor.js`, which defines
//! `window.RoostEditor`), with the server's syntax error shown at its line. `editor.js` is loaded
//! the first time an editor opens, so the rest of the portal starts without it.

use leptos::html::Div;
use leptos::prelude::*;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = RoostEditor, js_name = create)]
    fn editor_create(parent: &web_sys::HtmlElement, text: &str, on_change: &JsValue) -> JsValue;
    #[wasm_bindgen(js_namespace = RoostEditor, js_name = setError)]
    fn editor_set_error(view: &JsValue, line: u32, column: u32, message: &str);
    #[wasm_bindgen(js_namespace = RoostEditor, js_name = clearErrors)]
    fn editor_clear_errors(view: &JsValue);
    #[wasm_bindgen(js_namespace = RoostEditor, js_name = destroy)]
    fn editor_destroy(view: &JsValue);
}

/// Loads `editor.js` once (later calls wait for the same script).
async fn load_editor() -> Result<(), JsValue> {
    let w = window();
    if js_sys::Reflect::has(&w, &JsValue::from_str("RoostEditor"))? {
        return Ok(());
    }
    let doc = document();
    let script = match doc.get_element_by_id("roost-editor-js") {
        Some(s) => s,
        None => {
            let s = doc.create_element("script")?;
            s.set_id("roost-editor-js");
            s.set_attribute("src", "editor.js")?;
            doc.head().ok_or_else(|| JsValue::from_str("no <head>"))?.append_child(&s)?;
            s
        }
    };
    let target: web_sys::EventTarget = script.into();
    let loaded = js_sys::Promise::new(&mut |resolve, reject| {
        let _ = target.add_event_listener_with_callback("load", &resolve);
        let _ = target.add_event_listener_with_callback("error", &reject);
    });
    // The script may have finished loading between the check above and now.
    if !js_sys::Reflect::has(&w, &JsValue::from_str("RoostEditor"))? {
        wasm_bindgen_futures::JsFuture::from(loaded).await?;
    }
    Ok(())
}

/// A syntax error to show: line, column, message.
pub type Mark = Option<(u32, u32, String)>;

/// An editor holding `initial`; every edit goes to `text`; `mark` is shown in the gutter and text.
#[component]
pub fn CodeEditor(initial: String, text: RwSignal<String>, mark: RwSignal<Mark>) -> impl IntoView {
    let node = NodeRef::<Div>::new();
    let view_handle = StoredValue::new_local(None::<JsValue>);
    let failed = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        let Some(el) = node.get() else { return };
        if view_handle.with_value(Option::is_some) {
            return;
        }
        let initial = initial.clone();
        crate::spawn(async move {
            if let Err(e) = load_editor().await {
                failed.set(Some(format!("The editor could not be loaded: {}", e.as_string().unwrap_or_else(|| "editor.js failed".into()))));
                return;
            }
            if view_handle.with_value(Option::is_some) {
                return;
            }
            let on_change = Closure::<dyn Fn(String)>::new(move |t: String| text.set(t)).into_js_value();
            let v = editor_create(&el, &initial, &on_change);
            // A mark that arrived while the editor was loading.
            if let Some((line, column, message)) = mark.get_untracked() {
                editor_set_error(&v, line, column, &message);
            }
            view_handle.set_value(Some(v));
        });
    });
    Effect::new(move |_| {
        let m = mark.get();
        view_handle.with_value(|v| {
            if let Some(v) = v {
                match &m {
                    Some((line, column, message)) => editor_set_error(v, *line, *column, message),
                    None => editor_clear_errors(v),
                }
            }
        });
    });
    on_cleanup(move || {
        view_handle.with_value(|v| {
            if let Some(v) = v {
                editor_destroy(v);
            }
        });
    });
    view! {
        {move || failed.get().map(|m| view! { <p class="note error">{m}</p> })}
        <div class="editor" node_ref=node></div>
    }
}
