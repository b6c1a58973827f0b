//! Every setting is declared once, in `config::SETTINGS`; what else names the settings must
//! follow it:
//! - `selfhost/workerd.capnp` passes each setting that applies on workerd alone (a var missing
//!   there is silently unset, as LOG_LEVEL once was);
//! - README.md's configuration table is the list, row for row. `UPDATE_DOCS=1 cargo test --test
//!   settings` rewrites it from the declaration.

use livestore_sync::config::SETTINGS;

#[test]
fn every_setting_reaches_the_worker_under_workerd() {
    let capnp = include_str!("../selfhost/workerd.capnp");
    let missing: Vec<&str> = SETTINGS
        .iter()
        .filter(|s| s.self_hosted)
        .map(|s| s.name)
        .filter(|name| !capnp.contains(&format!("(name = \"{name}\", fromEnvironment = \"{name}\")")))
        .collect();
    assert!(
        missing.is_empty(),
        "selfhost/workerd.capnp lacks bindings for {missing:?}"
    );
}

#[test]
fn the_readme_table_is_the_declaration() {
    const BEGIN: &str = "<!-- settings-table:begin -->\n";
    const END: &str = "<!-- settings-table:end -->";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let start = readme.find(BEGIN).expect("README.md marks the settings table") + BEGIN.len();
    let end = readme[start..].find(END).expect("the table's end is marked") + start;
    let mut table = String::from("| name | default | meaning |\n|---|---|---|\n");
    for setting in SETTINGS {
        table.push_str(&setting.table_row());
        table.push('\n');
    }
    if readme[start..end] == table {
        return;
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(path, format!("{}{table}{}", &readme[..start], &readme[end..])).unwrap();
        return;
    }
    let documented: Vec<&str> = readme[start..end].lines().collect();
    let declared: Vec<&str> = table.lines().collect();
    let differing: Vec<String> = declared
        .iter()
        .enumerate()
        .filter(|(i, row)| documented.get(*i) != Some(row))
        .map(|(_, row)| row.chars().take(60).collect())
        .collect();
    panic!(
        "README.md's settings table differs from config::SETTINGS at {differing:?}; \
         run `UPDATE_DOCS=1 cargo test --test settings` to rewrite it"
    );
}
