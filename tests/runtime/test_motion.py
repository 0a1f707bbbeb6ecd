"""Motion gating: still scenes skip, motion runs and holds, forced runs, lighting changes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeface.errors import ConfigError
from edgeface.runtime.motion import MOTION_OPTIONS, MotionGate

FPS = 15.0
W, H = 640, 360


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """A textured still scene (smoothed random blobs), BGR float32."""
    rng = np.random.default_rng(1)
    small = rng.integers(30, 220, (18, 32, 3)).astype(np.uint8)
    return cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC).astype(np.float32)


_NOISE: dict[tuple, list[np.ndarray]] = {}


def camera(img: np.ndarray, rng: np.random.Generator, noise: float = 3.0) -> np.ndarray:
    """What a camera delivers: the scene plus sensor noise (one of 16 fields drawn once per
    size, picked at random: drawing fresh noise per frame made these tests slow), uint8."""
    bank = _NOISE.get(img.shape)
    if bank is None:
        g = np.random.default_rng(0)
        bank = _NOISE[img.shape] = [g.normal(0, 1, img.shape).astype(np.float32)
                                    for _ in range(16)]
    return np.clip(img + noise * bank[rng.integers(16)], 0, 255).astype(np.uint8)


def with_patch(img: np.ndarray, x: int, y: int, size: int = 40) -> np.ndarray:
    out = img.copy()
    patch = np.zeros((size, size, 3), np.float32)
    patch[::2] = 240  # a striped, face-sized object
    out[y:y + size, x:x + size] = patch
    return out


def feed(gate: MotionGate, frames, t0: float = 0.0) -> list[bool]:
    return [gate.check(f, t0 + k / FPS) for k, f in enumerate(frames)]


def test_a_still_scene_skips_after_the_first_frame_with_a_forced_run_every_interval(scene):
    rng = np.random.default_rng(2)
    gate = MotionGate(interval_s=2.0, hold_s=2.0)
    runs = feed(gate, (camera(scene, rng) for _ in range(int(10 * FPS))))
    assert runs[0] and gate.last_reason == "skip"
    ran = [k for k, r in enumerate(runs) if r]
    assert ran == [0, 30, 60, 90, 120]  # start, then every 2 s of frame time
    assert gate.motion == 0 and gate.forced == 4
    assert gate.checked == 150 and gate.skipped == 145


def test_motion_runs_the_detector_and_holds_after_it(scene):
    rng = np.random.default_rng(3)
    gate = MotionGate(interval_s=100.0, hold_s=1.0)
    still = [camera(scene, rng) for _ in range(30)]
    moving = [camera(with_patch(scene, 100 + 12 * k, 150), rng) for k in range(30)]
    after = [camera(scene, rng) for _ in range(60)]
    runs, reasons = [], []
    for k, f in enumerate(still + moving + after):
        runs.append(gate.check(f, k / FPS))
        reasons.append(gate.last_reason)
    assert not any(runs[1:30])
    assert all(r == "motion" for r in reasons[30:60])  # every frame with the object moving
    last = max(k for k, r in enumerate(reasons) if r == "motion")
    assert last < 64  # the spot it left is absorbed within a few frames
    # then a 1 s hold (14 more frames at 15 fps) and skips
    assert all(runs[last:last + 15]) and not any(runs[last + 16:])
    assert set(reasons[last + 1:last + 15]) == {"hold"}


def test_a_small_face_sized_change_is_motion(scene):
    rng = np.random.default_rng(4)
    big = cv2.resize(scene, (1280, 720))
    gate = MotionGate(interval_s=100.0, hold_s=0.0)
    feed(gate, [camera(big, rng) for _ in range(20)])
    # a 48 px face stepping in at 720p (1/15 of the height)
    assert gate.check(camera(with_patch(big, 600, 300, size=48), rng), 20 / FPS)
    assert gate.last_reason == "motion" and gate.last_area > gate.min_area


def test_sensor_noise_and_exposure_changes_are_not_motion(scene):
    rng = np.random.default_rng(5)
    gate = MotionGate(interval_s=100.0, hold_s=0.0)
    frames = [camera(scene, rng, noise=6.0) for _ in range(30)]
    # auto-exposure: brightness and contrast drift by 40 % over two seconds (unsaturated),
    # then a sudden uniform step
    frames += [camera(scene * (0.75 + 0.3 * k / 30) + 10 * k / 30, rng) for k in range(30)]
    frames += [camera(scene * 0.6 + 20, rng) for _ in range(30)]
    runs = feed(gate, frames)
    assert runs[0] and not any(runs[1:])
    assert gate.motion == 0 and gate.recalibrations == 0


def test_a_sudden_local_lighting_change_recalibrates_instead_of_triggering(scene):
    rng = np.random.default_rng(6)
    gate = MotionGate(interval_s=100.0, hold_s=1.0, background_s=60.0)
    lit = scene.copy()
    lit[:, : W * 3 // 4] = np.clip(lit[:, : W * 3 // 4] * 0.2 + 200, 0, 255)  # a lamp on
    runs = feed(gate, [camera(scene, rng) for _ in range(30)]
                + [camera(lit, rng) for _ in range(90)])
    assert gate.recalibrations == 1
    assert runs[30] and gate.motion == 1
    # motion once, the hold, then skipping again (a slow background alone would take
    # minutes to absorb the change at background_s=60)
    assert not any(runs[30 + 17:])


def test_a_face_standing_still_is_absorbed_into_the_background(scene):
    rng = np.random.default_rng(7)
    gate = MotionGate(interval_s=100.0, hold_s=0.0, background_s=2.0)
    feed(gate, [camera(scene, rng) for _ in range(15)])
    there = with_patch(scene, 300, 150, size=60)
    runs = feed(gate, [camera(there, rng) for _ in range(int(15 * FPS))], t0=1.0)
    assert runs[0] and not any(runs[-60:])
    # ... and its leaving is motion again
    assert gate.check(camera(scene, rng), 30.0)


def test_force_runs_the_detector_on_a_still_frame(scene):
    rng = np.random.default_rng(9)
    gate = MotionGate(interval_s=2.0)
    feed(gate, [camera(scene, rng) for _ in range(5)])
    assert gate.check(camera(scene, rng), 5 / FPS, force=True)
    assert gate.last_reason == "requested" and gate.requested == 1
    assert not gate.check(camera(scene, rng), 6 / FPS)
    # a forced run is due 2 s after the latest run, the requested one included
    runs = feed(gate, [camera(scene, rng) for _ in range(40)], t0=7 / FPS)
    assert [k for k, r in enumerate(runs) if r] == [28]


def test_a_clock_going_back_restarts_the_timers(scene):
    rng = np.random.default_rng(8)
    gate = MotionGate(interval_s=5.0)
    feed(gate, [camera(scene, rng) for _ in range(10)], t0=1000.0)
    assert not gate.check(camera(scene, rng), 1001.0)
    assert gate.check(camera(scene, rng), 10.0) and gate.last_reason == "start"


def test_grey_and_small_frames_are_accepted():
    gate = MotionGate()
    grey = np.full((60, 80), 100, np.uint8)
    assert gate.check(grey, 0.0)
    assert not gate.check(grey, 0.1)
    grey[10:30, 10:30] = 250
    assert gate.check(grey, 0.2)


def test_options_declarations_and_from_options():
    keys = [o.key for o in MOTION_OPTIONS]
    assert keys[0] == "motion" and len(set(keys)) == len(keys)
    assert MOTION_OPTIONS[0].cli == "bool" and MOTION_OPTIONS[0].default is False
    for o in MOTION_OPTIONS:
        assert o.flag == "--" + o.key.replace("_", "-") and o.help
        assert o.check(o.key, o.default) == o.default
        if o.cli == "value":
            assert o.check(o.key, str(o.default)) == o.default  # flags arrive as strings
    with pytest.raises(ConfigError):
        dict((o.key, o) for o in MOTION_OPTIONS)["motion_area"].check("motion_area", 0)
    assert MotionGate.from_options({"motion": False, "motion_hold": 9}) is None
    assert MotionGate.from_options({}) is None
    gate = MotionGate.from_options({"motion": True, "motion_hold": 9.0,
                                    "motion_interval": None, "track_min_hits": 2})
    assert gate.hold_s == 9.0 and gate.interval_s == 2.0 and gate.threshold == 25.0
    assert set(gate.stats()) == {"checked", "skipped", "motion", "forced", "requested",
                                 "recalibrations", "last_area"}
    with pytest.raises(ValueError):
        MotionGate(min_area=0.9, recalibrate_area=0.5)
