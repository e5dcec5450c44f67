# idlefarm's warm Blender driver: renders the frame ranges it reads on stdin, one JSON object a
# line ({"id": 1, "first": 5, "last": 9, "step": 2}), exactly as `-s first -e last -j step -a`
# would, in this already loaded and set up file. The agent prepends `MARK = "<random>"`; every
# line of ours starts with it, so nothing the scene prints can pass for one.
import ctypes
import json
import sys
import traceback

import bpy

_libc = ctypes.CDLL(None)


def _say(text):
    # Blender's own lines (`Saved: ...`) go through C stdio: they must come out before ours.
    sys.stdout.flush()
    _libc.fflush(None)
    sys.stdout.write("%s %s\n" % (MARK, text))
    sys.stdout.flush()


def _render(request):
    scene = bpy.context.scene
    # The start first: setting it past the end moves the end along, never the other way.
    scene.frame_start = request["first"]
    scene.frame_end = request["last"]
    scene.frame_step = request["step"]
    bpy.ops.render.render(animation=True)


_say("ready")
while True:
    line = sys.stdin.readline()
    if not line:
        break
    request = json.loads(line)
    try:
        _render(request)
    except Exception as err:
        traceback.print_exc(file=sys.stdout)
        reason = " ".join(str(err).split()) or type(err).__name__
        _say("failed %d %s" % (request["id"], reason))
    else:
        _say("done %d" % request["id"])
