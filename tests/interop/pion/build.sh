#!/bin/sh
# Builds pion-peer against Debian's Pion v3 (golang-github-pion-webrtc.v3-dev) in GOPATH mode: no
# module download. Output: $1 (default ./pion-peer).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/pion-peer}
gp=$(mktemp -d)
trap 'rm -rf "$gp"' EXIT
mkdir -p "$gp/src/github.com/pion/webrtc" "$gp/src/sellcast"
ln -s /usr/share/gocode/src/github.com/pion/webrtc "$gp/src/github.com/pion/webrtc/v3"
ln -s "$here" "$gp/src/sellcast/pion-peer"
cd "$gp/src/sellcast/pion-peer"
GO111MODULE=off GOPATH="$gp:/usr/share/gocode" GOPROXY=off GOFLAGS= GOCACHE="${GOCACHE:-$gp/cache}" go build -o "$out" .
