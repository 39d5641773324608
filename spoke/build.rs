//! Embeds every message catalogue in `locales/` (one TOML file per language, named by its
//! language tag): adding a language to the console is adding its file. The list is written to
//! `$OUT_DIR/locales.rs` and included by `i18n`; the catalogues themselves are checked by its
//! tests (every key English has, no other, the same placeholders).

use std::{env, fs, path::PathBuf};

fn main() {
    let dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("locales");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<(String, PathBuf)> = fs::read_dir(&dir)
        .expect("spoke/locales/ is readable")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter_map(|p| Some((p.file_stem()?.to_str()?.to_owned(), p)))
        .collect();
    files.sort();
    let mut out =
        String::from("/// Every catalogue of `spoke/locales/`: (language tag, TOML text).\n");
    out.push_str("pub(crate) const LOCALES: &[(&str, &str)] = &[\n");
    for (tag, path) in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        out.push_str(&format!(
            "    ({tag:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    out.push_str("];\n");
    let target = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it")).join("locales.rs");
    fs::write(target, out).expect("OUT_DIR is writable");
}
