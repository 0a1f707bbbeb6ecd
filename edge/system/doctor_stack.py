"""Doctor checks of the Python stack: Python and its venv, numpy, OpenCV, ONNX Runtime,
picamera2/libcamera (TensorRT's and cuda-python's are the TensorRT backend's:
:mod:`edgeface.inference.backends.tensorrt.check`).

The device failures these catch: a venv that cannot see apt's picamera2 (Raspberry Pi) or
apt's OpenCV and TensorRT (Jetson); a pip numpy 2 shadowing the system's numpy 1.x that
apt's extensions were built against (picamera2's simplejpeg: "numpy.dtype size changed");
two OpenCV wheels or onnxruntime + onnxruntime-gpu overwriting each other's files; pip's
OpenCV without GStreamer where a Jetson CSI camera needs it.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from edgeface.common.registry import Registry
from edgeface.system.doctor import Check, Finding, Probe
from edgeface.system.jetpack import JETSON_NUMPY, ort_index
from edgeface.system.onnxruntime_floor import (
    DCN_EXTENSION,
    DEFORMCONV_MIN_TEXT,
    dcn_disabled_reason,
    dcn_not_built_reason,
    runs_deformconv,
    ways_out,
)
from edgeface.system.pi_os import PiRoute, pi_route
from edgeface.system.platform import parse_nv_tegra_release

SYSTEM_SITE = "usr/lib/python3/dist-packages"
OPENCV_WHEELS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python",
                 "opencv-contrib-python-headless")
# JetPack 6.1/6.2's line; jetson_ort(p) picks the index from the device's L4T release.
JETSON_ORT = ("pip install onnxruntime-gpu --index-url https://pypi.jetson-ai-lab.io/jp6/cu126 "
              "(JetPack 6; pin the wheel by URL and sha256 for repeatable installs)")
# What an extension built for one numpy major says under the other (numpy 1.x and 2.x).
NUMPY_ABI_ERRORS = ("dtype size changed", "binary incompatib", "NumPy 1.x cannot be run",
                    "_ARRAY_API not found", "multiarray failed to import",
                    "compiled against ABI version")
VENV_FIX = ("recreate the venv with `python3 -m venv --system-site-packages` (from "
            "/usr/bin/python3) so that it sees {what}")


def l4t_of(p: Probe) -> Optional[str]:
    """The L4T release of the probed root (``36.3.0``), None when it is not a Jetson."""
    return parse_nv_tegra_release(p.read("etc/nv_tegra_release") or "").get("l4t")


def jetson_ort(p: Probe) -> str:
    """onnxruntime-gpu from the Jetson index of this L4T release (36.3 = JetPack 6.0: cu122,
    whose wheels match its cuDNN 8 and TensorRT 8.6; 36.4: cu126), numpy first (apt's 1.21.5
    is older than onnxruntime-gpu needs, and pip would otherwise install numpy 2)."""
    l4t = l4t_of(p)
    return (f"pip install '{JETSON_NUMPY}' && pip install onnxruntime-gpu --index-url "
            f"{ort_index(l4t)} (L4T {l4t or 'unknown'}; pin the wheel by URL and sha256 for "
            "repeatable installs)")


def check_python(p: Probe) -> Finding:
    py = p.python
    board = p.board()
    ssp = py.system_site_packages()
    where = (f"venv {py.prefix} ({'with' if ssp else 'no'} system site-packages)"
             if py.venv else f"system interpreter {py.executable}")
    details = {"version": py.version, "executable": py.executable, "venv": py.venv,
               "system_site_packages": ssp}
    summary = f"{py.version}, {where}"
    what = {"raspberry-pi": "apt's picamera2 and libcamera",
            "jetson": "apt's OpenCV (GStreamer) and TensorRT"}.get(board or "")
    if what and py.venv and not ssp:
        return Finding("python", "warn", summary, VENV_FIX.format(what=what), details)
    if board == "raspberry-pi" and not py.base_prefix.startswith("/usr"):
        return Finding("python", "warn", summary + f"; base {py.base_prefix} is not the "
                       "system Python (libcamera's bindings exist only for /usr/bin/python3)",
                       VENV_FIX.format(what=what), details)
    return Finding("python", "ok", summary, None, details)


def system_numpy(p: Probe) -> Optional[str]:
    """The version of the distribution's numpy (``python3-numpy``), if installed."""
    site = p.root / SYSTEM_SITE
    for pattern in ("numpy-*.dist-info", "numpy-*.egg-info"):
        for d in sorted(site.glob(pattern)):
            m = re.match(r"numpy-(\d+(?:\.\d+)+)", d.name)
            if m:
                return m.group(1)
    text = p.read(f"{SYSTEM_SITE}/numpy/version.py") or ""
    m = re.search(r"^(?:full_)?version(?::\s*str)?\s*=\s*['\"]([\d.]+)", text, re.MULTILINE)
    return m.group(1) if m else None


def route(p: Probe) -> PiRoute:
    """The Raspberry Pi OS install route for this system's release and apt numpy."""
    return pi_route(p.read("etc/os-release"), system_numpy(p))


def numpy_pin(p: Probe, system: str = "1") -> str:
    """``'numpy<2'``, plus the OpenCV pin when a pip OpenCV 4.12+ would demand numpy 2."""
    pins = [f"'numpy<{int(system.split('.')[0]) + 1}'"]
    for name in OPENCV_WHEELS:
        v = p.version_of(name)
        if v and tuple(int(x) for x in re.findall(r"\d+", v)[:2]) >= (4, 12):
            pins.append(f"'{name}<4.12'")
    return " ".join(pins)


def numpy_fix(p: Probe) -> str:
    """How to get back to apt's numpy: below 2 (Bookworm) by pinning it and OpenCV below
    4.12; at 2.x (Trixie), where a pip numpy 1.x is the problem, by removing pip's."""
    r = route(p)
    system = r.system_numpy or str(r.numpy_major)
    if r.numpy_major < 2:
        return (f"pip install {numpy_pin(p, system)} (or pip uninstall numpy to use the "
                f"system's {system})")
    return (f"pip uninstall -y numpy, to use apt's numpy {system} ({r.name}; its route: "
            f"{r.install}, never 'numpy<2')")


def check_numpy(p: Probe) -> Finding:
    np, err = p.load("numpy")
    if np is None:
        return Finding("numpy", "fail", f"not importable ({err})", "pip install numpy")
    version, path = np.__version__, getattr(np, "__file__", None)
    origin = p.origin(path)
    system = system_numpy(p)
    details = {"version": version, "path": path, "origin": origin, "system_numpy": system}
    summary = f"{version} ({origin})"
    sees_system = not p.python.venv or p.python.system_site_packages()
    if (system and origin != "apt" and sees_system
            and system.split(".")[0] != version.split(".")[0]):
        error = ("'numpy.dtype size changed'" if system.startswith("1.") else
                 "'compiled against ABI version 0x2000000'")  # numpy 1.x under 2.x-built ones
        return Finding(
            "numpy", "warn",
            f"{summary} shadows the system's numpy {system}: apt-built modules (picamera2's "
            f"simplejpeg, python3-opencv) then fail with {error}", numpy_fix(p), details)
    if system:
        summary += f", system numpy {system}"
    if p.board() == "raspberry-pi":
        r = route(p)
        details["route"] = {"release": r.release, "extra": r.extra, "install": r.install}
        summary += f" ({r.name}: edgeface[{r.extra}])"
    return Finding("numpy", "ok", summary, None, details)


def opencv_build(cv2: Any) -> dict[str, Optional[bool]]:
    """GStreamer and V4L2 support from ``cv2.getBuildInformation()``."""
    info = cv2.getBuildInformation()

    def yes(label: str) -> Optional[bool]:
        m = re.search(rf"^\s*{label}:\s*(\w+)", info, re.MULTILINE | re.IGNORECASE)
        return m.group(1).upper() == "YES" if m else None

    return {"gstreamer": yes("GStreamer"), "v4l2": yes(r"v4l/v4l2")}


def check_opencv(p: Probe) -> Finding:
    cv2, err = p.load("cv2")
    if cv2 is None:
        fix = ("use JetPack's OpenCV: sudo apt install python3-opencv, venv with "
               "--system-site-packages" if p.board() == "jetson" else
               f"{route(p).install} ({route(p).name}: {route(p).why_extra()})"
               if p.board() == "raspberry-pi" else "pip install 'edgeface[cpu]'")
        return Finding("opencv", "fail", f"not importable ({err})", fix)
    build = opencv_build(cv2)
    wheels = {n: v for n in OPENCV_WHEELS if (v := p.version_of(n))}
    origin = p.origin(getattr(cv2, "__file__", None))
    details = {"version": cv2.__version__, "origin": origin, "wheels": wheels, **build}
    flag = {True: "yes", False: "no", None: "?"}
    pre, _ = p.load("edgeface.inference.preprocess")
    details["preprocess"] = pre.preprocess_path() if pre is not None else None
    summary = (f"{cv2.__version__} ({origin}{': ' + ', '.join(wheels) if wheels else ''}), "
               f"GStreamer: {flag[build['gstreamer']]}, V4L2: {flag[build['v4l2']]}"
               + (f", preprocessing: {details['preprocess']}" if details["preprocess"] else ""))
    if len(wheels) > 1:
        keep = "opencv-python-headless"
        return Finding("opencv", "warn", summary + " — several OpenCV wheels overwrite each "
                       "other's cv2", f"pip uninstall -y {' '.join(wheels)} && pip install "
                       f"{keep}", details)
    if p.board() == "jetson" and build["gstreamer"] is False:
        return Finding("opencv", "warn", summary + " — pip's OpenCV cannot open CSI cameras",
                       f"pip uninstall -y {' '.join(wheels) or 'opencv-python'} and use "
                       "JetPack's (venv with --system-site-packages)", details)
    return Finding("opencv", "ok", summary, None, details)


def check_onnxruntime(p: Probe) -> Finding:
    ort, err = p.load("onnxruntime")
    jetson = p.board() == "jetson"
    if ort is None:
        return Finding("onnxruntime", "fail", f"not importable ({err})",
                       jetson_ort(p) if jetson else
                       f"{route(p).install} ({route(p).name})" if p.board() == "raspberry-pi" else
                       "pip install 'edgeface[cpu]'")
    providers = list(ort.get_available_providers())
    wheels = {n: v for n in ("onnxruntime", "onnxruntime-gpu") if (v := p.version_of(n))}
    short = [x.replace("ExecutionProvider", "") for x in providers]
    details = {"version": ort.__version__, "providers": providers, "wheels": wheels}
    summary = f"{ort.__version__}, providers: {', '.join(short)}"
    if len(wheels) > 1:
        return Finding("onnxruntime", "warn", summary + " — onnxruntime and onnxruntime-gpu "
                       "are both installed and overwrite each other",
                       "pip uninstall -y onnxruntime onnxruntime-gpu, then reinstall only "
                       "onnxruntime-gpu" + (f": {jetson_ort(p)}" if jetson else ""), details)
    if jetson and "CUDAExecutionProvider" not in providers:
        return Finding("onnxruntime", "warn", summary + " — no GPU provider on a Jetson",
                       "pip uninstall -y onnxruntime && " + jetson_ort(p), details)
    return Finding("onnxruntime", "ok", summary, None, details)


def check_deformconv(p: Probe) -> Finding:
    """Which kernel runs DeformConv, which `edgeface export` writes by default: edgeface's
    DCN fast path (the compiled sampler between ONNX Runtime segments of standard ops, any
    ONNX Runtime), else ONNX Runtime's own kernel (>= 1.25). When neither: FAIL, since no
    default export runs on this ONNX Runtime; on a Jetson a warning, where the documented
    route runs the GridSample export or TensorRT (the model check still fails when the
    configured model needs DeformConv). The sampler is imported by name through the probe."""
    ort, _ = p.load("onnxruntime")
    if ort is None:
        return Finding("deformconv", "skip", "ONNX Runtime is not importable")
    version = str(getattr(ort, "__version__", "0"))
    off = dcn_disabled_reason()
    if off is None:
        module, err = p.load(DCN_EXTENSION)
        off = None if module is not None else dcn_not_built_reason(str(err))
    details = {"version": version, "needs": DEFORMCONV_MIN_TEXT,
               "dcn_path": "sampler" if off is None else "onnxruntime", "fast_path_off": off}
    native = runs_deformconv(version)
    if off is None:
        return Finding("deformconv", "ok", "dcn: fast sampler (C extension), on any ONNX "
                       f"Runtime (ONNX Runtime {version} "
                       f"{'has' if native else 'lacks'} its own DeformConv kernel, from "
                       f"{DEFORMCONV_MIN_TEXT})", None, details)
    if native:
        return Finding("deformconv", "ok", f"dcn: ONNX Runtime {version}'s DeformConv (fast "
                       f"sampler off: {off})", None, details)
    details["dcn_path"] = None
    status = "warn" if p.board() == "jetson" else "fail"
    return Finding("deformconv", status, f"ONNX Runtime {version} cannot run DeformConv, which "
                   f"edgeface's default export uses (it needs ONNX Runtime >= "
                   f"{DEFORMCONV_MIN_TEXT}), and the DCN fast path is off ({off})", ways_out(),
                   details)


def picamera2_fix(p: Probe, err: str) -> str:
    """The fix for a failed ``import picamera2``, from its error line."""
    if "libcamera" in err:
        return VENV_FIX.format(what="apt's libcamera bindings (python3-libcamera)")
    if any(m in err for m in NUMPY_ABI_ERRORS):
        r = route(p)
        return (f"in the venv: {numpy_fix(p)}; apt's simplejpeg is built for numpy "
                f"{r.numpy_major}.x on {r.name}")
    if "picamera2" in err:
        return ("sudo apt install python3-picamera2 and a venv with "
                "--system-site-packages (it is not installable with pip)")
    return "sudo apt install --reinstall python3-picamera2 python3-libcamera"


def check_picamera2(p: Probe) -> Finding:
    if p.board() != "raspberry-pi":
        return Finding("picamera2", "skip", "not a Raspberry Pi")
    mod, err = p.load("picamera2")
    if mod is None:
        return Finding("picamera2", "warn", f"not importable ({err})", picamera2_fix(p, err or ""))
    version = p.version_of("picamera2")
    if version is None and p.commands:
        version = (p.run(["dpkg-query", "-W", "-f=${Version}", "python3-picamera2"], 3.0)
                   or "").strip() or None
    _, lc_err = p.load("libcamera")
    details = {"version": version, "libcamera": lc_err is None}
    return Finding("picamera2", "ok", f"{version or 'version unknown'}, libcamera "
                   + ("importable" if lc_err is None else f"not importable ({lc_err})"),
                   None, details)


#: The Python stack's checks, in report order. A backend's own checks (ONNX Runtime,
#: DeformConv, TensorRT) are in its spec (``BackendSpec.doctor_checks``).
CHECKS: Registry[Check] = Registry("doctor check")
for _name, _check in (("python", check_python), ("numpy", check_numpy),
                      ("opencv", check_opencv), ("picamera2", check_picamera2)):
    CHECKS.register(_check, _name)
