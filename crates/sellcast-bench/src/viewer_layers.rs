//! The server's own view of each viewer's layer: `GET /api/stats/media` `viewers[]` (layer,
//! estimate, switches, pauses) and `layers[]` (each room's layers by measured bitrate).
//!
//! The API does not say which WHEP session a `viewers[]` entry is, so the bench ties them by
//! joining: it joins one link profile's viewers, waits until that many new entries appear, and
//! takes the new peer ids as that profile's (`Tie`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// One entry of `viewers[]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ServerViewer {
    pub peer: u64,
    #[serde(default)]
    pub room: String,
    #[serde(default)]
    pub layer: Option<String>,
    #[serde(default)]
    pub layer_index: Option<u8>,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub estimate_bps: Option<u64>,
    #[serde(default)]
    pub estimate_source: Option<String>,
    #[serde(default)]
    pub switches: u64,
    #[serde(default)]
    pub pauses: u64,
}

/// One entry of `layers[]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ServerLayer {
    #[serde(default)]
    pub room: String,
    #[serde(default)]
    pub rid: Option<String>,
    pub index: u8,
    #[serde(default)]
    pub bitrate_bps: u64,
    #[serde(default)]
    pub height: Option<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct LayerView {
    pub viewers: Vec<ServerViewer>,
    pub layers: Vec<ServerLayer>,
}

impl LayerView {
    pub fn viewer(&self, peer: u64) -> Option<&ServerViewer> {
        self.viewers.iter().find(|v| v.peer == peer)
    }

    /// The layer `index` of `room`.
    pub fn layer(&self, room: &str, index: u8) -> Option<&ServerLayer> {
        self.layers.iter().find(|l| l.room == room && l.index == index)
    }

    /// A viewer's layer as a label: its rid (or index), "paused", or "-" when it has none.
    pub fn label(&self, peer: u64) -> String {
        match self.viewer(peer) {
            Some(v) if v.paused => "paused".to_owned(),
            Some(v) => v.layer.clone().or_else(|| v.layer_index.map(|i| i.to_string())).unwrap_or_else(|| "-".to_owned()),
            None => "gone".to_owned(),
        }
    }
}

/// Read `viewers[]` and `layers[]`; an error that says so when the server has no `viewers[]`
/// (a server without per-viewer layers).
pub async fn read(http: &reqwest::Client, base: &str) -> Result<LayerView> {
    let v: serde_json::Value = http.get(format!("{base}/api/stats/media")).send().await?.json().await?;
    let Some(viewers) = v.get("viewers") else {
        bail!("GET /api/stats/media has no viewers[]: this server does not report per-viewer layers (issue 10's forwarding core is not in it)");
    };
    let viewers: Vec<ServerViewer> = serde_json::from_value(viewers.clone()).context("viewers[]")?;
    let layers: Vec<ServerLayer> = match v.get("layers") {
        Some(l) => serde_json::from_value(l.clone()).context("layers[]")?,
        None => Vec::new(),
    };
    Ok(LayerView { viewers, layers })
}

/// Which server peer ids belong to which group of viewers (a link profile).
#[derive(Debug, Default)]
pub struct Tie {
    known: BTreeSet<u64>,
    pub groups: BTreeMap<usize, Vec<u64>>,
}

impl Tie {
    /// Note the viewers already on the server (none of the groups).
    pub async fn start(http: &reqwest::Client, base: &str) -> Result<Tie> {
        let view = read(http, base).await?;
        Ok(Tie { known: view.viewers.iter().map(|v| v.peer).collect(), groups: BTreeMap::new() })
    }

    /// After `count` viewers of `group` joined: wait (bounded) until that many new peers show
    /// up in `room`, and file them under `group`.
    pub async fn take(&mut self, http: &reqwest::Client, base: &str, room: &str, group: usize, count: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let view = read(http, base).await?;
            let fresh: Vec<u64> = view.viewers.iter().filter(|v| v.room == room && !self.known.contains(&v.peer)).map(|v| v.peer).collect();
            if fresh.len() >= count {
                self.known.extend(&fresh);
                self.groups.entry(group).or_default().extend(fresh);
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("only {} of {count} new viewers appeared in viewers[] within 10 s", fresh.len());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_shape_reads_and_labels_viewers() {
        let v = serde_json::json!({
            "viewers": [
                {"peer": 7, "room": "r", "layer": "h", "layer_index": 1, "paused": false, "estimate_bps": 640000,
                 "estimate_source": "remb", "switches": 2, "pauses": 0, "cap_height": null, "data_saver": false},
                {"peer": 9, "room": "r", "layer": null, "layer_index": null, "paused": true, "estimate_bps": null,
                 "estimate_source": null, "switches": 0, "pauses": 1, "cap_height": null, "data_saver": false}
            ],
            "layers": [{"room": "r", "rid": "h", "index": 1, "bitrate_bps": 510000, "width": 640, "height": 360}]
        });
        let view = LayerView {
            viewers: serde_json::from_value(v["viewers"].clone()).expect("test setup"),
            layers: serde_json::from_value(v["layers"].clone()).expect("test setup"),
        };
        assert_eq!((view.label(7), view.label(9), view.label(1)), ("h".into(), "paused".into(), "gone".into()));
        assert_eq!(view.layer("r", 1).map(|l| l.bitrate_bps), Some(510_000));
        assert_eq!(view.viewer(7).and_then(|v| v.estimate_source.as_deref()), Some("remb"));
    }
}
