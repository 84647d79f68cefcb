//! Prints the shared-samples survey as the README's Markdown table.
//! Run from the repository root: `cargo run --example samples_table [DIR]` (default `../shared/data/samples`).

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/data/samples".into());
    let rows = quench::app::samples::survey(std::path::Path::new(&dir))?;
    print!("{}", quench::app::samples::markdown(&rows));
    for r in rows.iter().filter(|r| r.excluded.is_none()) {
        for f in &r.failures {
            eprintln!("{}: {f}", r.source);
        }
    }
    Ok(())
}
