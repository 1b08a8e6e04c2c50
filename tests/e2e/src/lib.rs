//! End-to-end tests live in `tests/it`; this library is empty. The binaries under test are found
//! next to the test executable (`target/<profile>/`), built by `cargo nextest run --workspace`
//! (what `cargo xtask ci` runs) or `cargo build --workspace --bins`.
