//! The self-hosting config (`selfhost/workerd.capnp`) must pass every setting the worker reads:
//! a var missing there is silently unset under workerd, as LOG_LEVEL once was.

/// Every `pub const NAME: &str = "VALUE";` of `pub mod vars` in src/config.rs.
fn var_names() -> Vec<String> {
    let source = include_str!("../src/config.rs");
    let start = source.find("pub mod vars {").expect("config.rs has `pub mod vars`");
    let body = &source[start..];
    let body = &body[..body.find("\n}").expect("the module ends")];
    body.lines()
        .filter_map(|line| line.trim().strip_prefix("pub const "))
        .filter_map(|rest| rest.split('"').nth(1).map(str::to_owned))
        .collect()
}

#[test]
fn every_setting_reaches_the_worker_under_workerd() {
    let capnp = include_str!("../selfhost/workerd.capnp");
    let names = var_names();
    assert!(names.len() > 15, "found the vars: {names:?}");
    // D1 needs wrangler (workerd alone has none); TEST_FAULTS is for the wrangler-run tests only.
    let not_for_workerd = ["D1_BINDING", "TEST_FAULTS"];
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| !not_for_workerd.contains(&name.as_str()))
        .filter(|name| !capnp.contains(&format!("(name = \"{name}\", fromEnvironment = \"{name}\")")))
        .collect();
    assert!(
        missing.is_empty(),
        "selfhost/workerd.capnp lacks bindings for {missing:?}"
    );
}
