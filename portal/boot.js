// Loads the portal's WebAssembly (wasm-bindgen's `--target web` glue) and starts the app.
import init from './portal.js';
init();
