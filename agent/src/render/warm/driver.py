# idlefarm's warm Blender driver: renders the frame ranges it reads on stdin, one JSON object a
# line ({"id": 1, "first": 5, "last": 9, "step": 2, "end": 250}), as `-s first -e last -j step
# -a` would, in this already loaded and set up file. The agent prepends `MARK = "<random>"`;
# every line of ours starts with it, so nothing the scene prints can pass for one.
#
# One animation render (`-a`) runs from a chunk's first frame to the job's last ("end"), and
# waits, once a chunk's last frame is written, for the next chunk: the render engine stays set
# up across chunks (Eevee compiles its shaders once per render, not once per chunk). Frames
# between chunks are skipped the way Blender skips existing files with "overwrite" off: an empty
# file of ours stands in for each, removed when the render ends. A chunk behind the current
# frame ends the render (every frame left is skipped) and starts another at its first frame.
import ctypes
import json
import os
import sys
import traceback

import bpy

_libc = ctypes.CDLL(None)
_request = None  # the chunk being rendered
_pending = None  # a chunk read that needs a render of its own
_stand_ins = []


def _say(text):
    # Blender's own lines (`Saved: ...`) go through C stdio: they must come out before ours.
    sys.stdout.flush()
    _libc.fflush(None)
    sys.stdout.write("%s %s\n" % (MARK, text))
    sys.stdout.flush()


def _read():
    line = sys.stdin.readline()
    if not line:
        # The agent is gone or done with us.
        os._exit(0)
    return json.loads(line)


def _skip(frames):
    for frame in frames:
        path = bpy.context.scene.render.frame_path(frame=frame)
        try:
            open(path, "xb").close()
            _stand_ins.append(path)
        except FileExistsError:
            pass


def _remove_stand_ins():
    while _stand_ins:
        try:
            os.remove(_stand_ins.pop())
        except OSError:
            pass


def _continues(request, frame, scene):
    """Whether `request` goes on in the running render, past `frame`."""
    return (
        request["end"] == scene.frame_end
        and request["step"] == scene.frame_step
        and request["first"] > frame
        and (request["first"] - frame) % scene.frame_step == 0
    )


def _on_write(scene, *_):
    global _request, _pending
    try:
        frame = scene.frame_current
        if _request is None or frame != _request["last"]:
            return
        _say("done %d" % _request["id"])
        _request = None
        step = scene.frame_step
        if frame + step > scene.frame_end:
            return
        following = _read()
        if _continues(following, frame, scene):
            _skip(range(frame + step, following["first"], step))
            _request = following
        else:
            _skip(range(frame + step, scene.frame_end + 1, step))
            _pending = following
    except Exception:
        # Never leave the agent waiting: it reports the exit with this log.
        traceback.print_exc(file=sys.stdout)
        sys.stdout.flush()
        os._exit(1)


def _on_frame(scene, *_):
    # A frame past the chunk's last: that one was not written (Blender said why).
    if _request is not None and scene.frame_current > _request["last"]:
        _say("failed %d frame %d was not saved" % (_request["id"], _request["last"]))
        sys.stdout.flush()
        os._exit(1)


bpy.app.handlers.render_write.append(_on_write)
bpy.app.handlers.render_pre.append(_on_frame)
bpy.context.scene.render.use_overwrite = False
_say("ready")
while True:
    _request = _pending or _read()
    _pending = None
    scene = bpy.context.scene
    try:
        # The start first: setting it past the end moves the end along, never the other way.
        scene.frame_start = _request["first"]
        scene.frame_end = _request["end"]
        scene.frame_step = _request["step"]
        bpy.ops.render.render(animation=True)
    except Exception as err:
        traceback.print_exc(file=sys.stdout)
        if _request is not None:
            reason = " ".join(str(err).split()) or type(err).__name__
            _say("failed %d %s" % (_request["id"], reason))
    else:
        if _request is not None:
            _say("failed %d frame %d was not saved" % (_request["id"], _request["last"]))
    finally:
        _remove_stand_ins()
