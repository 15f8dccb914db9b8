// The portal's script editor: CodeMirror 6 with JavaScript highlighting, line numbers, and the
// server's syntax errors shown at their line. The Leptos app drives it through window.RoostEditor.
import { EditorView, basicSetup } from "codemirror";
import { javascript } from "@codemirror/lang-javascript";
import { setDiagnostics, lintGutter } from "@codemirror/lint";

window.RoostEditor = {
  // Mounts an editor in `parent` holding `text`; `onChange(text)` runs after every edit.
  create(parent, text, onChange) {
    const view = new EditorView({
      doc: text,
      parent,
      extensions: [
        basicSetup,
        javascript(),
        lintGutter(),
        EditorView.updateListener.of((u) => {
          if (u.docChanged) onChange(u.state.doc.toString());
        }),
      ],
    });
    return view;
  },
  text(view) {
    return view.state.doc.toString();
  },
  setText(view, text) {
    view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
  },
  // Marks `line`/`column` (1-based) with `message`.
  setError(view, line, column, message) {
    const doc = view.state.doc;
    const l = doc.line(Math.max(1, Math.min(line, doc.lines)));
    const from = Math.min(l.from + Math.max(0, column - 1), l.to);
    const to = from < l.to ? from + 1 : from;
    view.dispatch(setDiagnostics(view.state, [{ from, to, severity: "error", message }]));
  },
  clearErrors(view) {
    view.dispatch(setDiagnostics(view.state, []));
  },
  destroy(view) {
    view.destroy();
  },
};
