"""The MQTT event backlog (issue 23, class 7): bounded, newest kept, no track left open."""

from __future__ import annotations

import time

import pytest

from edgeface.runtime.sinks.event_backlog import EventBacklog


def drain(b: EventBacklog) -> list[tuple[int, str]]:
    out = []
    while (p := b.pop()) is not None:
        out.append(p)
    return out


def add(b: EventBacklog, track: int, kind: str) -> None:
    b.add(track, kind, (track, kind))


def assert_no_open_track(events, alive=()) -> None:
    """Every start has its end after it, unless the track is still alive; no end alone."""
    started: set[int] = set()
    for track, kind in events:
        if kind == "start":
            started.add(track)
        elif kind == "end":
            assert track in started, f"track {track} ends without its start: {events}"
            started.discard(track)
        else:
            assert track in started, f"track {track} updated without its start: {events}"
    assert started <= set(alive), f"tracks {started - set(alive)} never end: {events}"


def test_updates_go_first_and_the_newest_are_kept():
    b = EventBacklog(4)
    add(b, 1, "start")
    for _ in range(10):
        add(b, 1, "update")
    add(b, 1, "end")
    assert drain(b) == [(1, "start"), (1, "update"), (1, "update"), (1, "end")]
    assert b.dropped == 8


def test_whole_tracks_go_oldest_first_and_an_open_one_survives_them():
    b = EventBacklog(6)
    add(b, 100, "start")  # still alive at the end
    for t in range(1, 31):
        add(b, t, "start")
        add(b, t, "update")
        add(b, t, "end")
    add(b, 101, "start")
    events = drain(b)
    assert len(events) <= 6 and (100, "start") in events and events[-1] == (101, "start")
    assert events[-3:-1] == [(30, "start"), (30, "end")]  # the newest track is there
    assert_no_open_track(events, alive={100, 101})


def test_an_end_whose_start_went_out_is_never_dropped():
    b = EventBacklog(3)
    sent = []
    for t in range(5):  # five starts went out before the broker went away
        add(b, t, "start")
        sent += drain(b)
    for t in range(5):
        for _ in range(3):
            add(b, t, "update")
        add(b, t, "end")
    for t in range(10, 40):
        add(b, t, "start")
        add(b, t, "end")
    events = drain(b)
    assert [e for e in events if e[1] == "end" and e[0] < 5] == [(t, "end") for t in range(5)]
    assert len(events) <= 3 + 5  # the bound, passed by the tracks open at the outage
    assert_no_open_track(sent + events)


def test_a_dropped_start_silences_its_track():
    b = EventBacklog(2)
    add(b, 1, "start")
    add(b, 2, "start")
    add(b, 3, "start")  # over the bound, no update or pair: the oldest start goes
    add(b, 1, "update")
    add(b, 1, "end")
    add(b, 4, "start")  # the silence ended with track 1's end
    add(b, 4, "end")
    events = drain(b)
    assert all(t != 1 for t, _ in events)
    assert_no_open_track(events, alive={2, 3})


@pytest.mark.parametrize("seed", range(20))
def test_random_streams_never_leave_a_track_open(seed):
    import random

    rng = random.Random(seed)
    b = EventBacklog(rng.choice([1, 3, 10]))
    alive: list[int] = []
    sent: list[tuple[int, str]] = []
    next_id = most_alive = 0
    for _ in range(2000):
        r = rng.random()
        if r < 0.2 or not alive:
            alive.append(next_id)
            add(b, next_id, "start")
            next_id += 1
        elif r < 0.6:
            add(b, rng.choice(alive), "update")
        elif r < 0.8:
            t = alive.pop(rng.randrange(len(alive)))
            add(b, t, "end")
        elif rng.random() < 0.5:  # the broker takes some
            for _ in range(rng.randrange(5)):
                if (p := b.pop()) is not None:
                    sent.append(p)
        # Past the bound only by ends whose start went out: one per track alive then.
        most_alive = max(most_alive, len(alive))
        assert len(b) <= b.limit + most_alive
    sent += drain(b)
    assert_no_open_track(sent, alive=alive)


def test_add_and_pop_stay_cheap_at_the_largest_queue():
    b = EventBacklog(100000)
    t = time.perf_counter()
    for i in range(300000):  # 200,000 overflows: the updates go, one at a time
        b.add(i % 50, "update", i)
    adds = time.perf_counter() - t
    t = time.perf_counter()
    assert len(drain(b)) == 100000
    pops = time.perf_counter() - t
    # Measured ~1 us an add and a pop; an O(n) step would take minutes here.
    assert adds < 5 and pops < 5, (adds, pops)
