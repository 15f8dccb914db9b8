//! Rebuilds the binary when the built portal changes: `http/portal.rs` embeds `portal/dist` (with
//! rust-embed), and a file added to it would not otherwise be noticed.
fn main() {
    println!("cargo:rerun-if-changed=../../portal/dist");
    println!("cargo:rerun-if-changed=build.rs");
}
