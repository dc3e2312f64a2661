//! Renderings of a report: Markdown and self-contained HTML with SVG plots.
