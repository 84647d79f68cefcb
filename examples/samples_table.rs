//! Prints the shared-samples survey as the README's Markdown table.
//! With Elastic's expected facts (`fixtures/peer/`), the last column counts the facts Quench agrees with.
//! Run from the repository root: `cargo run --example samples_table [DIR]` (default `../shared/data/samples`).

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/data/samples".into());
    let peer = quench::lab::samples::load_peer(std::path::Path::new(
        "fixtures/peer/elastic_expected.jsonl",
    ))?;
    let rows = quench::lab::samples::survey_against(std::path::Path::new(&dir), &peer)?;
    print!("{}", quench::lab::samples::markdown(&rows));
    for r in rows.iter().filter(|r| r.excluded.is_none()) {
        for f in &r.failures {
            eprintln!("{}: {f}", r.source);
        }
        for d in &r.peer_disagreements {
            eprintln!("{} differs from Elastic: {d}", r.source);
        }
    }
    Ok(())
}
