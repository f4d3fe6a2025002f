//! Criterion benchmarks of the data pipeline live in `benches/benches/`.
