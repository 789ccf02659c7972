"""Headless OpenGL for MuJoCo rendering, chosen before dm_control is first imported.

dm_control reads ``MUJOCO_GL`` once, when it is imported, so the choice is made here and every module of
``envs`` that imports dm_control calls :func:`configure_gl` first. A user's own ``MUJOCO_GL`` always wins.
EGL is preferred (faster; GPU-backed on NVIDIA nodes, Mesa's llvmpipe on CPU), OSMesa is the fallback.
"""

from __future__ import annotations

import ctypes.util
import os

_BACKEND_LIBRARIES = (("egl", "EGL"), ("osmesa", "OSMesa"))


def available_gl_backends() -> list[str]:
    return [backend for backend, library in _BACKEND_LIBRARIES if ctypes.util.find_library(library)]


def configure_gl() -> str | None:
    """Set ``MUJOCO_GL`` to the first headless backend found, unless the user set it; return the choice."""
    if "MUJOCO_GL" not in os.environ:
        found = available_gl_backends()
        if found:
            os.environ["MUJOCO_GL"] = found[0]
            # PyOpenGL must agree with MuJoCo, or it tries a GLX/X11 display first.
            os.environ.setdefault("PYOPENGL_PLATFORM", found[0])
    return os.environ.get("MUJOCO_GL")


def rendering_unavailable_reason() -> str | None:
    """Why pixels cannot be rendered here, or None when a backend library is present."""
    if os.environ.get("MUJOCO_GL") or available_gl_backends():
        return None
    return ("no headless OpenGL library (EGL or OSMesa) found; Debian: "
            "`apt-get install libegl1 libegl-mesa0 libosmesa6`, or set MUJOCO_GL")
