//! The orchestrator: the NFCS cycle at a fixed frequency over concurrent modules.
