//! The README's walkthrough, run as written: every `$ changebot …` line in its ```console
//! blocks runs the real binary against the example config and a fresh database, with the clock
//! pinned, and must print exactly what the README shows (trycmd). `TRYCMD=overwrite cargo test
//! --test readme` rewrites the README's output after a deliberate change.

#[test]
fn the_readme_walkthrough_prints_what_the_readme_shows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("walkthrough.db").display());
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/changebot.toml");
    trycmd::TestCases::new()
        .register_bin(
            "changebot",
            std::path::PathBuf::from(env!("CARGO_BIN_EXE_changebot")),
        )
        // Monday 2026-11-23 10:00 in Berlin: the walkthrough's times follow from it.
        .env("CHANGEBOT_NOW", "2026-11-23T09:00:00Z")
        .env("CHANGEBOT_DATABASE_URL", db)
        .env("CHANGEBOT_CONFIG", config)
        .env("CHANGEBOT_LOG", "warn")
        .case("README.md")
        .run();
}
