//! The script editor: CodeMirror 6 (bundled from npm into `editor.js`, which defines
//! `window.RoostEditor`), with the server's syntax error shown at its line.

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

/// A syntax error to show: line, column, message.
pub type Mark = Option<(u32, u32, String)>;

/// An editor holding `initial`; every edit goes to `text`; `mark` is shown in the gutter and text.
#[component]
pub fn CodeEditor(initial: String, text: RwSignal<String>, mark: RwSignal<Mark>) -> impl IntoView {
    let node = NodeRef::<Div>::new();
    let view_handle = StoredValue::new_local(None::<JsValue>);
    Effect::new(move |_| {
        let Some(el) = node.get() else { return };
        if view_handle.with_value(Option::is_some) {
            return;
        }
        let on_change = Closure::<dyn Fn(String)>::new(move |t: String| text.set(t)).into_js_value();
        let v = editor_create(&el, &initial, &on_change);
        view_handle.set_value(Some(v));
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
    view! { <div class="editor" node_ref=node></div> }
}
