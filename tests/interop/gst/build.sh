#!/bin/sh
# Builds GStreamer's WHIP/WHEP elements (`whipclientsink`, `whepclientsrc`, crate gst-plugin-webrtc
# from crates.io; not packaged in Debian 12) into $OUT (default tests/interop/gst/plugins).
# Needs Debian's GStreamer dev packages (see .ci/run). Takes about 5 minutes on 2 cores; skips the
# build when the plugin is already there. Point GST_PLUGIN_PATH at $OUT to use it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/plugins}
version=0.15.4
[ -f "$out/libgstrswebrtc.so" ] && exit 0
work=${CARGO_TARGET_DIR:-$here/build}
mkdir -p "$work/fetch/src" "$out"
# An empty crate that depends on the plugin: `cargo fetch` brings its source the ordinary way.
cat > "$work/fetch/Cargo.toml" <<TOML
[package]
name = "fetch-gst-plugin-webrtc"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
gst-plugin-webrtc = { version = "=$version", default-features = false }
[workspace]
TOML
: > "$work/fetch/src/lib.rs"
(cd "$work/fetch" && cargo fetch -q)
src=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name "gst-plugin-webrtc-$version" | head -n1)
[ -n "$src" ] || { echo "gst-plugin-webrtc $version source not found after cargo fetch" >&2; exit 1; }
rm -rf "$work/src" && cp -r "$src" "$work/src"
# The packaged crate has no [workspace]; give it one so it builds standalone.
grep -q '^\[workspace\]' "$work/src/Cargo.toml" || printf '\n[workspace]\n' >> "$work/src/Cargo.toml"
(cd "$work/src" && nice -n 10 cargo build --release --no-default-features --features whip,whep,rustls-ring --target-dir "$work/target")
cp "$work/target/release/libgstrswebrtc.so" "$out/"
