"""Doctor checks of the Python stack: Python and its venv, numpy, OpenCV, ONNX Runtime,
picamera2/libcamera, TensorRT and cuda-python.

The device failures these catch: a venv that cannot see apt's picamera2 (Raspberry Pi) or
JetPack's OpenCV/TensorRT (Jetson); a pip numpy 2 shadowing the system's numpy 1.x that
apt's extensions were built against (picamera2's simplejpeg: "numpy.dtype size changed");
two OpenCV wheels or onnxruntime + onnxruntime-gpu overwriting each other's files; pip's
OpenCV without GStreamer where a Jetson CSI camera needs it.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from edgeface.system.doctor import Finding, Probe
from edgeface.system.onnxruntime_floor import DEFORMCONV_MIN_TEXT, runs_deformconv, ways_out
from edgeface.system.platform import tensorrt_from_libs

SYSTEM_SITE = "usr/lib/python3/dist-packages"
OPENCV_WHEELS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python",
                 "opencv-contrib-python-headless")
JETSON_ORT = ("pip install onnxruntime-gpu --index-url https://pypi.jetson-ai-lab.io/jp6/cu126 "
              "(JetPack 6; pin the wheel by URL and sha256 for repeatable installs)")
VENV_FIX = ("recreate the venv with `python3 -m venv --system-site-packages` (from "
            "/usr/bin/python3) so that it sees {what}")


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
            "jetson": "JetPack's OpenCV (GStreamer) and TensorRT"}.get(board or "")
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


def numpy_pin(p: Probe, system: str = "1") -> str:
    """``'numpy<2'``, plus the OpenCV pin when a pip OpenCV 4.12+ would demand numpy 2."""
    pins = [f"'numpy<{int(system.split('.')[0]) + 1}'"]
    for name in OPENCV_WHEELS:
        v = p.version_of(name)
        if v and tuple(int(x) for x in re.findall(r"\d+", v)[:2]) >= (4, 12):
            pins.append(f"'{name}<4.12'")
    return " ".join(pins)


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
        return Finding(
            "numpy", "warn",
            f"{summary} shadows the system's numpy {system}: apt-built modules (picamera2's "
            "simplejpeg, python3-opencv) then fail with 'numpy.dtype size changed'",
            f"pip install {numpy_pin(p, system)} (or pip uninstall numpy to use the system's "
            f"{system})", details)
    return Finding("numpy", "ok", summary + (f", system numpy {system}" if system else ""),
                   None, details)


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
        fix = {"jetson": "use JetPack's OpenCV: sudo apt install python3-opencv, venv with "
                         "--system-site-packages",
               "raspberry-pi": "pip install 'edgeface[pi]' (its OpenCV is below 4.12: 4.12+ "
                               "needs numpy 2, which breaks apt's picamera2)",
               }.get(p.board() or "", "pip install 'edgeface[cpu]'")
        return Finding("opencv", "fail", f"not importable ({err})", fix)
    build = opencv_build(cv2)
    wheels = {n: v for n in OPENCV_WHEELS if (v := p.version_of(n))}
    origin = p.origin(getattr(cv2, "__file__", None))
    details = {"version": cv2.__version__, "origin": origin, "wheels": wheels, **build}
    flag = {True: "yes", False: "no", None: "?"}
    summary = (f"{cv2.__version__} ({origin}{': ' + ', '.join(wheels) if wheels else ''}), "
               f"GStreamer: {flag[build['gstreamer']]}, V4L2: {flag[build['v4l2']]}")
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
                       JETSON_ORT if jetson else
                       "pip install 'edgeface[pi]'" if p.board() == "raspberry-pi" else
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
                       "onnxruntime-gpu" + (f": {JETSON_ORT}" if jetson else ""), details)
    if jetson and "CUDAExecutionProvider" not in providers:
        return Finding("onnxruntime", "warn", summary + " — no GPU provider on a Jetson",
                       "pip uninstall -y onnxruntime && " + JETSON_ORT, details)
    return Finding("onnxruntime", "ok", summary, None, details)


def check_deformconv(p: Probe) -> Finding:
    """ONNX Runtime >= 1.25 runs DeformConv, which `edgeface export` writes by default. A
    warning, not a failure: a GridSample export or TensorRT runs without it (the model
    check fails when the configured model needs it)."""
    ort, _ = p.load("onnxruntime")
    if ort is None:
        return Finding("deformconv", "skip", "ONNX Runtime is not importable")
    version = str(getattr(ort, "__version__", "0"))
    details = {"version": version, "needs": DEFORMCONV_MIN_TEXT}
    if runs_deformconv(version):
        return Finding("deformconv", "ok", f"ONNX Runtime {version} runs DeformConv "
                       f"(needs >= {DEFORMCONV_MIN_TEXT})", None, details)
    return Finding("deformconv", "warn", f"ONNX Runtime {version} cannot run DeformConv, which "
                   f"edgeface's default export uses (it needs ONNX Runtime >= "
                   f"{DEFORMCONV_MIN_TEXT})", ways_out(), details)


def picamera2_fix(p: Probe, err: str) -> str:
    """The fix for a failed ``import picamera2``, from its error line."""
    if "libcamera" in err:
        return VENV_FIX.format(what="apt's libcamera bindings (python3-libcamera)")
    if "dtype size changed" in err or "binary incompatib" in err:
        return (f"pip install {numpy_pin(p)} in the venv (apt's simplejpeg is built for "
                "numpy 1.x)")
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


def check_tensorrt(p: Probe) -> Finding:
    libs = tensorrt_from_libs(p.root)
    jetson = p.board() == "jetson"
    if not jetson and libs is None and p.version_of("tensorrt") is None:
        return Finding("tensorrt", "skip", "not a Jetson, no TensorRT installed")
    trt, err = p.load("tensorrt")
    py = getattr(trt, "__version__", None) if trt is not None else None
    cuda = p.version_of("cuda-python")
    details = {"libnvinfer": libs, "python": py, "python_error": err, "cuda_python": cuda}
    summary = (f"libnvinfer {libs or 'not found'}, Python bindings "
               f"{py or 'not importable'}, cuda-python {cuda or 'not installed'}")
    if jetson and libs and trt is None:
        fix = ("sudo apt install python3-libnvinfer" if p.python.system_site_packages()
               or not p.python.venv else VENV_FIX.format(what="TensorRT's Python bindings"))
        return Finding("tensorrt", "info", summary, fix + " (only if you need TensorRT from "
                       "Python; ONNX Runtime's TensorRT provider does not)", details)
    return Finding("tensorrt", "ok" if (libs or py) else "info", summary, None, details)


CHECKS = [("python", check_python), ("numpy", check_numpy), ("opencv", check_opencv),
          ("onnxruntime", check_onnxruntime), ("deformconv", check_deformconv),
          ("picamera2", check_picamera2),
          ("tensorrt", check_tensorrt)]
