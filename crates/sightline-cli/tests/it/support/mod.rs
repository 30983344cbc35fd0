//! Helpers of this test binary that know the CLI's own scenarios (the generic ones are in
//! `sightline-testkit`).

pub mod train_env;

/// The `sightline` binary under test.
pub const SIGHTLINE: &str = env!("CARGO_BIN_EXE_sightline");

/// The redactions every snapshot of this binary starts from: `home` as `[home]`, the fixtures
/// folder as `[fixtures]`, the workspace as `[workspace]`, `request_id`s, timestamps and durations (see [`Redactions::new`]), floats rounded to
/// 4 decimals.
pub fn redactions(home: &std::path::Path) -> sightline_testkit::Redactions {
    let mut r = sightline_testkit::Redactions::new()
        .path(home, "[home]")
        .path(sightline_testkit::fixtures(), "[fixtures]")
        .path(sightline_testkit::workspace_root(), "[workspace]")
        .key("request_id", "[id]")
        .round_floats(4);
    if let Ok(canonical) = home.canonicalize() {
        r = r.path(canonical, "[home]");
    }
    r
}
