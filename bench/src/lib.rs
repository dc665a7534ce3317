//! prism-bench: benchmark support code (the load generator lands here).
