"""GStreamer `whipclientsink` (gst-plugin-webrtc) publishing a test pattern and a tone over WHIP.

    whip_publisher.py --url WHIP_URL --token T --codec vp8|h264

Needs Debian's GStreamer (python3-gst-1.0) and GST_PLUGIN_PATH pointing at libgstrswebrtc.so
(gst/build.sh). Prints `PUBLISHING` once the connection is up, then runs until killed.
libnice skips loopback interfaces: run.sh gives the namespace a veth with 127.0.0.2, and we add
127.0.0.1 to each ICE agent so it can reach the server there.
"""
import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

CAPS = {"vp8": "video/x-vp8", "h264": "video/x-h264"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--codec", choices=CAPS, default="vp8")
    a = ap.parse_args()
    Gst.init(None)
    pipeline = Gst.parse_launch(
        "videotestsrc is-live=true pattern=smpte ! video/x-raw,width=320,height=240,framerate=30/1 ! queue ! ws. "
        "audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=48000,channels=2 ! queue ! ws. "
        f"whipclientsink name=ws video-caps={CAPS[a.codec]} audio-caps=audio/x-opus "
        "congestion-control=disabled stun-server=stun://127.0.0.1:9"
    )
    sink = pipeline.get_by_name("ws")
    signaller = sink.get_property("signaller")
    signaller.set_property("whip-endpoint", a.url)
    signaller.set_property("auth-token", a.token)

    def on_webrtcbin(_signaller, _peer, webrtcbin):
        webrtcbin.get_property("ice-agent").emit("add-local-ip-address", "127.0.0.1")

        def on_state(bin_, _pspec):
            if bin_.get_property("connection-state").value_nick == "connected":
                print("PUBLISHING", flush=True)

        webrtcbin.connect("notify::connection-state", on_state)

    signaller.connect("webrtcbin-ready", on_webrtcbin)
    loop = GLib.MainLoop()

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            print(f"error: {err.message} ({dbg})", file=sys.stderr, flush=True)
            loop.quit()

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    pipeline.set_state(Gst.State.PLAYING)
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    sys.exit(1)


if __name__ == "__main__":
    main()
