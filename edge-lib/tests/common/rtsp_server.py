"""Serve an H.264 MP4 over RTSP on loopback for rollcall's tests, with GStreamer's RTSP server.

Usage: python3 -c "$(cat rtsp_server.py)" VIDEO.mp4 PORT MOUNT [USER:PASSWORD]
(PORT 0: any free port; with USER:PASSWORD clients must log in with HTTP Basic auth.)
Prints "port N" once it listens, then serves until killed. Every client gets the file from its
start, paced in real time, RTP over the RTSP TCP connection or UDP as the client asks.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

video, port, mount = sys.argv[1], sys.argv[2], sys.argv[3]
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
location = video.replace("\\", "\\\\").replace('"', '\\"')
factory.set_launch(
    f'( filesrc location="{location}" ! qtdemux name=demux '
    "demux.video_0 ! queue ! rtph264pay name=pay0 pt=96 config-interval=1 )"
)
if len(sys.argv) > 4:
    user, password = sys.argv[4].split(":", 1)
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", user)
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    factory.add_role_from_structure(
        Gst.Structure.new_from_string(
            f"{user}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        )
    )
server.get_mount_points().add_factory(mount, factory)
if server.attach(None) == 0:
    sys.exit(f"cannot listen on 127.0.0.1:{port}")
print(f"port {server.get_bound_port()}", flush=True)
GLib.MainLoop().run()
