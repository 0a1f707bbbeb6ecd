"""The camera loop lends its detector between frames: results reach the borrower, the time
lent stays within the share, errors stay the borrower's, and a stopped loop refuses."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from runtime_fakes import FakeBackend, synthetic_frames, write_video

from edgeface.inference.detector import Detector
from edgeface.runtime.lend import DetectorLender, LoanRefused
from edgeface.runtime.loop import Runtime
from edgeface.runtime.sources import open_source


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class SlowDetector:
    """Stands in for a detector: each inference takes ``took`` s of real time."""

    input_size = (32, 32)

    def __init__(self, took: float = 0.0, fail: bool = False):
        self.took, self.fail, self.calls = took, fail, 0

    def prepare(self, image, frame_size=None):
        return image.mean()

    def detect_prepared(self, prepared, preprocess_s=0.0):
        self.calls += 1
        if self.fail:
            raise ValueError("bad input")
        if self.took:
            time.sleep(self.took)
        return prepared, preprocess_s


def borrow(lender: DetectorLender, value: float) -> dict:
    """Start a borrower thread; its outcome lands in the returned dict."""
    out: dict = {}

    def go():
        try:
            out["result"] = lender.detect_prepared(value, 0.5)
        except BaseException as exc:
            out["error"] = exc

    out["thread"] = threading.Thread(target=go)
    out["thread"].start()
    deadline = time.monotonic() + 5
    while lender.waiting == 0 and "error" not in out and time.monotonic() < deadline:
        time.sleep(0.001)
    return out


def test_the_loop_runs_a_loan_and_the_borrower_gets_its_result():
    lender = DetectorLender(SlowDetector())
    loan = borrow(lender, 7.0)
    assert lender.serve() == 1
    loan["thread"].join(5)
    assert loan["result"] == (7.0, 0.5) and lender.lent == 1 and lender.waiting == 0
    assert lender.serve() == 0  # nothing waiting: nothing runs


def test_lent_time_stays_within_the_share_of_the_loop_time():
    clock = Clock()
    det = SlowDetector(took=0.01)
    lender = DetectorLender(det, share=0.1, burst=0.02, clock=clock, timeout=30)
    stop = threading.Event()

    def greedy():  # a borrower that always wants more
        while not stop.is_set():
            try:
                lender.detect_prepared(1.0)
            except LoanRefused:
                return

    t = threading.Thread(target=greedy)
    t.start()
    try:
        for _ in range(300):  # 300 frames of 20 ms loop time each: 6 s
            clock.now += 0.02
            deadline = time.monotonic() + 5
            while lender.waiting == 0 and time.monotonic() < deadline:
                time.sleep(0.0005)
            lender.serve()
    finally:
        stop.set()
        lender.close()
        t.join(5)
    elapsed = 300 * 0.02
    # Every loan takes >= 10 ms of real time, so the share allows at most ~0.6 s + burst.
    assert 0.3 <= lender.lent_s <= 0.1 * elapsed + 0.02 + 0.02, lender.lent_s
    assert 20 <= lender.lent <= 64, lender.lent


def test_idle_loop_lends_without_a_budget():
    lender = DetectorLender(SlowDetector(), share=0.01, burst=0.0)
    loan = borrow(lender, 4.0)  # no burst, a tiny share: a busy loop lends nothing now
    assert lender.serve() == 0
    assert lender.serve(idle=True) == 1
    loan["thread"].join(5)
    assert loan["result"][0] == 4.0


def test_a_failing_loan_fails_the_borrower_not_the_loop():
    lender = DetectorLender(SlowDetector(fail=True))
    loan = borrow(lender, 1.0)
    assert lender.serve() == 1  # no exception here
    loan["thread"].join(5)
    assert isinstance(loan["error"], ValueError)


def test_the_loops_own_end_is_not_lent_to_the_borrower():
    class Interrupted(SlowDetector):
        def detect_prepared(self, prepared, preprocess_s=0.0):
            raise KeyboardInterrupt  # a second Ctrl-C while the loop runs a loan

    lender = DetectorLender(Interrupted())
    loan = borrow(lender, 1.0)
    with pytest.raises(KeyboardInterrupt):
        lender.serve()  # goes on up to the loop, not into the borrower's answer
    loan["thread"].join(5)
    assert isinstance(loan["error"], LoanRefused)


def test_close_refuses_waiting_and_later_loans_and_a_timeout_refuses():
    lender = DetectorLender(SlowDetector(), timeout=0.2)
    loan = borrow(lender, 1.0)
    loan["thread"].join(5)  # nobody serves: it gives up after 0.2 s
    assert isinstance(loan["error"], LoanRefused) and "within 0.2 s" in str(loan["error"])
    assert lender.serve() == 0  # the abandoned loan is skipped, never run
    waiting = borrow(lender, 2.0)
    lender.close()
    waiting["thread"].join(5)
    assert isinstance(waiting["error"], LoanRefused)
    with pytest.raises(LoanRefused, match="stopped"):
        lender.detect_prepared(3.0)


def test_runtime_lends_its_detector_between_frames_and_refuses_after_the_run(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", synthetic_frames(30, (160, 120)))
    detector = Detector(FakeBackend(delay=0.002))
    lender = DetectorLender(detector, share=0.5)
    image = synthetic_frames(1, (160, 120))[0]
    expected, _ = detector.detect_timed(image)
    got: dict = {}

    def client():
        got["dets"], got["timing"] = lender.detect_timed(image)

    with Runtime(open_source(clip, loop=True, prepare=detector.prepare), detector,
                 lender=lender) as rt:
        t = threading.Thread(target=client)
        t.start()
        deadline = time.monotonic() + 5
        while lender.waiting == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        stats = rt.run(max_frames=60)
        t.join(5)
    assert stats.frames == 60 and lender.lent == 1
    np.testing.assert_array_equal(got["dets"].boxes, expected.boxes)
    with pytest.raises(LoanRefused):
        lender.detect_timed(image)
