"""OpenCV APIs that differ between the builds devices really have.

The floors (setup.cfg): JetPack 6's apt python3-opencv 4.5.4 and the pip floor
opencv-python-headless 4.5.5.64, Debian 12's apt 4.6.0, Raspberry Pi OS's `.[pi]`
4.11.0.86, and the newest wheels (5.x). Each helper takes what the installed build has
instead of assuming the newest one.
"""

from __future__ import annotations

#: cv::utils::logging::LOG_LEVEL_ERROR, the value the legacy cv2.setLogLevel(int) takes.
_LOG_LEVEL_ERROR = 2


def set_log_level_error() -> bool:
    """Show only OpenCV's errors. `cv2.utils.logging` is missing from the 4.5-4.11 pip
    wheels and Debian's 4.6 (only 5.x has it); those have the legacy `cv2.setLogLevel`,
    which 5.x removed. Returns False where neither exists (then `OPENCV_LOG_LEVEL=ERROR`
    in the environment before Python starts does the same)."""
    import cv2

    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is not None and hasattr(logging, "setLogLevel"):
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)
        return True
    legacy = getattr(cv2, "setLogLevel", None)
    if legacy is not None:
        legacy(_LOG_LEVEL_ERROR)
        return True
    return False


def capture_params(*pairs: tuple[str, int]) -> tuple[int, ...]:
    """VideoCapture open parameters as the flat (id, value, ...) list, keeping the ones
    this build names: `CAP_PROP_N_THREADS` is absent from 4.5.5 and 4.6.0 (4.11 has it),
    and a parameter's absence only costs its effect, never the open."""
    import cv2

    flat: list[int] = []
    for name, value in pairs:
        prop = getattr(cv2, name, None)
        if prop is not None:
            flat += [int(prop), int(value)]
    return tuple(flat)
