"""GStreamer `whepclientsrc` (gst-plugin-webrtc) watching over WHEP, without decoding.

    whep_viewer.py --url WHEP_URL --token T [--timeout MS]

Each output pad goes to a fakesink, so the element hands over depayloaded frames; the caps name
the codec (video/x-vp8, video/x-h264). Prints `VIEWER {json}` in the shape of lib.mjs `Receipt`.
First-frame time: PLAYING (when the element posts its offer) -> first key frame out of the
depayloader. whepclientsrc opens no data channel.
"""
import argparse
import json
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--timeout", type=int, default=20000)
    a = ap.parse_args()
    Gst.init(None)
    rep = {"stack": "gstreamer", "codec": None, "frames": 0, "span_ms": 0, "first_frame_ms": None,
           "audio_packets": 0, "audio_codec": None, "channel": None}
    first_pts = [None]
    pipeline = Gst.Pipeline.new("viewer")
    src = Gst.ElementFactory.make("whepclientsrc", "src")
    src.set_property("stun-server", "stun://127.0.0.1:9")
    signaller = src.get_property("signaller")
    signaller.set_property("whep-endpoint", a.url)
    signaller.set_property("auth-token", a.token)
    signaller.connect("webrtcbin-ready", lambda _s, _p, wb: wb.get_property("ice-agent").emit("add-local-ip-address", "127.0.0.1"))
    pipeline.add(src)
    started = [0.0]

    def on_buffer(pad, info):
        buf = info.get_buffer()
        caps = pad.get_current_caps()
        name = caps.get_structure(0).get_name() if caps else ""
        if name.startswith("audio/"):
            rep["audio_codec"] = name.split("/")[1].replace("x-", "").upper()
            rep["audio_packets"] += 1
        elif name.startswith("video/"):
            rep["codec"] = name.split("/")[1].replace("x-", "").upper()
            key = not buf.has_flags(Gst.BufferFlags.DELTA_UNIT)
            if first_pts[0] is None and not key:
                return Gst.PadProbeReturn.OK
            if first_pts[0] is None:
                first_pts[0] = buf.pts
                rep["first_frame_ms"] = round((time.monotonic() - started[0]) * 1000)
            rep["frames"] += 1
            if buf.pts != Gst.CLOCK_TIME_NONE and first_pts[0] != Gst.CLOCK_TIME_NONE:
                rep["span_ms"] = (buf.pts - first_pts[0]) // Gst.MSECOND
        return Gst.PadProbeReturn.OK

    def on_pad(_src, pad):
        sink = Gst.ElementFactory.make("fakesink")
        sink.set_property("sync", False)
        pipeline.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))
        sink.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, on_buffer)

    src.connect("pad-added", on_pad)
    loop = GLib.MainLoop()

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            rep["error"] = f"{err.message} ({dbg})"[:400]
            loop.quit()

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    deadline = time.monotonic() + a.timeout / 1000

    def check():
        if (rep["frames"] >= 20 and rep["span_ms"] >= 2000 and rep["audio_packets"] > 0) or time.monotonic() > deadline:
            loop.quit()
            return False
        return True

    GLib.timeout_add(50, check)
    started[0] = time.monotonic()
    pipeline.set_state(Gst.State.PLAYING)
    loop.run()
    print(f"VIEWER {json.dumps(rep)}", flush=True)
    # The plugin can panic while tearing down (its own bug); the report is already out.
    pipeline.set_state(Gst.State.NULL)


if __name__ == "__main__":
    main()
