//! Embeds text lines for offline experiments (e.g. tuning search fusion on LoCoMo).
//!
//! ```text
//! cargo run --release -p memory-embedding --example embed_lines -- IN.txt OUT.f32 [MODEL_DIR]
//! ```
//! IN.txt: one text a line (`\n` inside a text written as the two characters `\n`).
//! OUT.f32: for each line, [`Embedder::dim`] little-endian `f32`s (L2-normalised), in
//! input order, nothing else. MODEL_DIR defaults to the test model.

use std::io::Write;
use std::path::PathBuf;

use memory_embedding::Embedder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, rest @ ..] = args.as_slice() else {
        return Err("usage: embed_lines IN.txt OUT.f32 [MODEL_DIR]".into());
    };
    let model = rest
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(memory_embedding::test_model_dir);
    let embedder = Embedder::load(&model)?;
    let lines: Vec<String> = std::fs::read_to_string(input)?
        .lines()
        .map(|l| l.replace("\\n", "\n"))
        .collect();
    let mut out = std::io::BufWriter::new(std::fs::File::create(output)?);
    let started = std::time::Instant::now();
    for (i, batch) in lines.chunks(256).enumerate() {
        let texts: Vec<&str> = batch.iter().map(String::as_str).collect();
        for v in embedder.embed(&texts)? {
            for x in v {
                out.write_all(&x.to_le_bytes())?;
            }
        }
        eprintln!(
            "{} / {} texts, {:.1} s",
            (i * 256 + batch.len()),
            lines.len(),
            started.elapsed().as_secs_f64()
        );
    }
    out.flush()?;
    Ok(())
}
