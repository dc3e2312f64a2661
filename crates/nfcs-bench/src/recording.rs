//! The recording API of continuous monitoring, under the spec's metric names.
