//! `bhsync demo --report FILE`: a self-contained HTML page (inline SVG, no script, no
//! external resource) of the demo's convergence over time: distinct state hashes (1
//! means every node agrees), the largest consistency lag, and bytes per node, with the
//! phases shaded, then the final table.
//!
//! The page is written to `FILE.tmp` and renamed over FILE, so a failed run leaves any
//! previous report whole; the temporary file is created before the demo starts, so an
//! unwritable path fails at once instead of after the run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::failure::{io_hint, Failure};

/// One point of the timeline.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// Since the cluster started, ms.
    pub t_ms: u64,
    /// The phase it was taken in.
    pub phase: &'static str,
    /// Distinct state hashes over the nodes.
    pub groups: usize,
    /// Links up (each counted once).
    pub links: usize,
    /// The largest consistency lag over the nodes, ms.
    pub lag_ms: u64,
    /// Socket bytes in plus out, per node.
    pub bytes: Vec<u64>,
}

/// What the page shows.
pub struct Report<'a> {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// The timeline.
    pub samples: &'a [Sample],
    /// The final table (text).
    pub table: &'a str,
    /// Whether every state hash agreed at the end.
    pub converged: bool,
}

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 70.0;
const COLORS: [&str; 8] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

impl Report<'_> {
    /// Checks that `path` can be written by creating its temporary file; returns it.
    pub fn prepare(path: &Path) -> Result<PathBuf, Failure> {
        if path.is_dir() {
            return Err(Failure::usage(format!("--report {} is a directory; give a file name", path.display())));
        }
        let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".tmp");
        let tmp = path.with_file_name(name);
        std::fs::File::create(&tmp).map_err(|error| {
            Failure::runtime(format!(
                "cannot write the report {}: {} ({error}); choose a writable path for --report",
                path.display(),
                io_hint(&error)
            ))
        })?;
        Ok(tmp)
    }

    /// Writes the page to `tmp`, then renames it to `path`.
    pub fn write(&self, path: &Path, tmp: PathBuf) -> Result<(), Failure> {
        let written = std::fs::write(&tmp, self.html()).and_then(|()| std::fs::rename(&tmp, path));
        written.map_err(|error| {
            let _ = std::fs::remove_file(&tmp);
            Failure::runtime(format!("cannot write the report {}: {error}", path.display()))
        })
    }

    fn html(&self) -> String {
        let mut out = String::with_capacity(64 * 1024);
        let verdict = if self.converged { "converged: every state hash agrees" } else { "did NOT converge" };
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>bhsync demo</title>\
             <style>body{{font-family:sans-serif;margin:2em;color:#222}}svg{{display:block;margin-bottom:1.5em}}\
             pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}</style></head><body>\
             <h1>bhsync demo: {} nodes</h1><p>{verdict}. Shaded: the cluster split in two.</p>",
            self.nodes
        );
        let end = self.samples.last().map(|s| s.t_ms).unwrap_or(1).max(1) as f64;
        let groups: Vec<(f64, f64)> = self.samples.iter().map(|s| (s.t_ms as f64, s.groups as f64)).collect();
        self.chart(&mut out, "Distinct state hashes (1 = converged)", end, &[groups], 1.0);
        let lag: Vec<(f64, f64)> = self.samples.iter().map(|s| (s.t_ms as f64, s.lag_ms as f64 / 1e3)).collect();
        self.chart(&mut out, "Largest consistency lag (s)", end, &[lag], 1.0);
        let per_node: Vec<Vec<(f64, f64)>> = (0..self.nodes)
            .map(|n| {
                self.samples.iter().map(|s| (s.t_ms as f64, s.bytes.get(n).copied().unwrap_or(0) as f64)).collect()
            })
            .collect();
        self.chart(&mut out, "Bytes in + out per node", end, &per_node, 1.0);
        let _ = writeln!(out, "<h2>Per node</h2><pre>{}</pre></body></html>", escape(self.table));
        out
    }

    fn chart(&self, out: &mut String, title: &str, end_ms: f64, series: &[Vec<(f64, f64)>], min_top: f64) {
        let top = series.iter().flatten().map(|p| p.1).fold(min_top, f64::max) * 1.1;
        let x = |t: f64| LEFT + t / end_ms * (WIDTH - LEFT - 10.0);
        let y = |v: f64| 10.0 + (1.0 - v / top) * (HEIGHT - 30.0);
        let _ = write!(
            out,
            "<h2>{}</h2><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
             role=\"img\" aria-label=\"{}\">",
            escape(title),
            escape(title)
        );
        // The split, shaded.
        let split: Vec<f64> =
            self.samples.iter().filter(|s| s.phase.contains("split")).map(|s| s.t_ms as f64).collect();
        if let (Some(first), Some(last)) = (split.first(), split.last()) {
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"10\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#fbe3e3\"/>",
                x(*first),
                (x(*last) - x(*first)).max(1.0),
                HEIGHT - 30.0
            );
        }
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"#888\"/>\
             <line x1=\"{LEFT}\" y1=\"10\" x2=\"{LEFT}\" y2=\"{0:.1}\" stroke=\"#888\"/>\
             <text x=\"{2:.1}\" y=\"14\" font-size=\"11\" text-anchor=\"end\">{3}</text>\
             <text x=\"{2:.1}\" y=\"{0:.1}\" font-size=\"11\" text-anchor=\"end\">0</text>\
             <text x=\"{1:.1}\" y=\"{4:.1}\" font-size=\"11\" text-anchor=\"end\">{5:.1} s</text>",
            HEIGHT - 20.0,
            WIDTH - 10.0,
            LEFT - 4.0,
            human(top / 1.1),
            HEIGHT - 5.0,
            end_ms / 1e3
        );
        for (index, points) in series.iter().enumerate() {
            let path: Vec<String> = points.iter().map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v))).collect();
            let _ = write!(
                out,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>",
                COLORS[index % COLORS.len()],
                path.join(" ")
            );
        }
        out.push_str("</svg>");
    }
}

fn human(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1}k", value / 1e3)
    } else {
        format!("{value:.1}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
