//! `NFCSBenchmarkSuite`: runs the components and assembles the report.
