"""Image headers that lie (issue 23, classes 1, 2 and 13): the size the header reader
admits must be the size the decoder makes, and the work behind a JPEG is bounded before
decoding. A generated corpus (every format, clean and mutated) is checked differentially:
every file admitted decodes to exactly the claimed shape, or not at all."""

from __future__ import annotations

import random
import struct
import time

import cv2
import numpy as np
import pytest

from edgeface.media.image_header import (
    MAX_JPEG_SCANS,
    HeaderError,
    check_jpeg_data,
    read_header,
)
from edgeface.media.images import ImageReadError, decode_image

BUDGET = 4_000_000  # pixels: what the corpus may decode (the real check comes first too)


# ----------------------------------------------------------------------------- writers

def tiff(width: int, height: int, *, extra: list[tuple[int, int, int]] = (),
         second_ifd: bool = False, little: bool = True) -> bytes:
    """An uncompressed 8-bit RGB TIFF, one strip; ``extra`` (tag, type, value) entries go
    after the size tags (a repeated tag when it names 256 or 257)."""
    e = "<" if little else ">"
    pixels = (np.arange(width * height * 3) % 251).astype(np.uint8).tobytes()
    entries = [(256, 4, width), (257, 4, height), *extra, (258, 3, 8), (259, 3, 1),
               (262, 3, 2), (273, 4, 0), (277, 3, 3), (278, 4, height),
               (279, 4, len(pixels))]
    ifd_at = 8
    ifd_len = 2 + 12 * len(entries) + 4
    data_at = ifd_at + ifd_len + (ifd_len if second_ifd else 0)

    def ifd(next_at: int) -> bytes:
        out = struct.pack(e + "H", len(entries))
        for tag, typ, value in entries:
            value = data_at if tag == 273 else value
            packed = (struct.pack(e + "HH", value, 0) if typ == 3
                      else struct.pack(e + "I", value))
            out += struct.pack(e + "HHI", tag, typ, 1) + packed
        return out + struct.pack(e + "I", next_at)

    head = (b"II*\x00" if little else b"MM\x00*") + struct.pack(e + "I", ifd_at)
    body = ifd(ifd_at + ifd_len if second_ifd else 0)
    if second_ifd:
        body += ifd(0)
    return head + body + pixels


def jpeg(width: int, height: int, progressive: bool = False, gray: bool = False,
         seed: int = 0, smooth: bool = False) -> bytes:
    """Noise (the most data a size can have), or a smooth gradient (scans of a few bytes:
    what a scan bomb repeats)."""
    rng = np.random.default_rng(seed)
    if smooth:
        ramp = np.linspace(0, 255, width * height).reshape(height, width).astype(np.uint8)
        img = ramp if gray else np.dstack([ramp, ramp[::-1], ramp])
    else:
        img = rng.integers(0, 255, (height, width) if gray else (height, width, 3), np.uint8)
    flags = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if progressive else []
    ok, buf = cv2.imencode(".jpg", img, flags)
    assert ok
    return buf.tobytes()


def segments(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each marker segment and scan up to EOI, for splicing tests."""
    out, i = [], 2
    while data[i + 1] != 0xD9:
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        end = i + 2 + length
        if data[i + 1] == 0xDA:  # the scan's entropy-coded data runs to the next marker
            j = end
            while not (data[j] == 0xFF and data[j + 1] not in (0, 0xFF, *range(0xD0, 0xD8))):
                j += 1
            end = j
        out.append((i, end))
        i = end
    return out


def repeat_scan(data: bytes, times: int) -> bytes:
    """A progressive JPEG with its smallest scan repeated ``times`` more times, in place:
    the decoder goes over the whole image once more for each copy (~0.7 ms a scan at
    12 Mpx), for a few bytes each; the image stays the same."""
    segs = segments(data)
    scans = [(e - s, k) for k, (s, e) in enumerate(segs) if data[s + 1] == 0xDA]
    _, k = min(scans)
    start, end = segs[k]
    return data[:end] + data[start:end] * times + data[end:]


def with_sof(data: bytes, width: int, height: int) -> bytes:
    """``data`` with its frame header's size replaced (the rest of the file unchanged)."""
    for start, _ in segments(data):
        if data[start + 1] in (0xC0, 0xC1, 0xC2):
            return (data[:start + 5] + struct.pack(">HH", height, width)
                    + data[start + 9:])
    raise AssertionError("no SOF")


def admitted(data: bytes, budget: int = BUDGET) -> tuple[int, int] | None:
    """(height, width) if the runtime's checks admit ``data`` for decoding, else None."""
    try:
        h = read_header(data)
    except HeaderError:
        return None
    if h.pixels > budget:
        return None
    try:
        check_jpeg_data(data)
    except HeaderError:
        return None
    return h.height, h.width


# -------------------------------------------------------------------------- class 1: TIFF

def test_a_plain_tiff_is_read_and_decodes_to_its_claim():
    data = tiff(120, 80)
    assert admitted(data) == (80, 120)
    assert decode_image(data).shape == (80, 120, 3)


@pytest.mark.parametrize("extra, match", [
    ([(256, 4, 20000), (257, 4, 20000)], "tag 256 given twice"),  # libtiff: first wins
    ([(257, 3, 20000)], "tag 257 given twice"),
    ([(273, 4, 0)], "tag 273 given twice"),
])
def test_a_tiff_with_a_repeated_tag_is_refused(extra, match):
    data = tiff(100, 100, extra=extra)
    with pytest.raises(HeaderError, match=match):
        read_header(data)
    with pytest.raises(ImageReadError, match=match):
        decode_image(data)


def test_a_tiff_with_two_images_is_refused():
    with pytest.raises(HeaderError, match="several images"):
        read_header(tiff(64, 64, second_ifd=True))


def test_the_issue_case_a_lying_tiff_never_reaches_the_decoder(tmp_path):
    """426 KB that passed as 100x100 and decoded as 20000x20000 (2.4 GB peak)."""
    data = tiff(100, 100, extra=[(256, 4, 20000), (257, 4, 20000)]) + bytes(420_000)
    t0 = time.monotonic()
    with pytest.raises(ImageReadError):
        decode_image(data)
    assert time.monotonic() - t0 < 1


# ---------------------------------------------------------------- class 1: JPEG, two SOFs

def test_a_jpeg_with_two_frame_headers_is_refused():
    data = jpeg(64, 48)
    segs = segments(data)
    sof = next(s for s in segs if data[s[0] + 1] == 0xC0)
    second = data[sof[0]:sof[0] + 5] + struct.pack(">HH", 20000, 20000) + data[sof[0] + 9:
                                                                                sof[1]]
    for spliced in (data[:sof[1]] + second + data[sof[1]:],  # before the scan
                    data[:segs[-1][1]] + second + data[segs[-1][1]:]):  # after it
        with pytest.raises((HeaderError, ImageReadError), match="several frame headers"):
            read_header(spliced)
            decode_image(spliced)


def test_an_exif_thumbnail_is_not_a_second_frame():
    thumb = jpeg(16, 16)
    app1 = b"Exif\0\0" + thumb
    main = jpeg(64, 48, seed=1)
    data = main[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + main[2:]
    assert admitted(data) == (48, 64)
    assert decode_image(data).shape == (48, 64, 3)


# -------------------------------------------------------------- class 2: scan-count bombs

def test_a_repeated_scan_under_the_cap_decodes_and_over_it_is_refused_at_once():
    base = jpeg(800, 600, progressive=True, smooth=True)
    n = len(segments(base)) and sum(1 for s, _ in segments(base) if base[s + 1] == 0xDA)
    ok = repeat_scan(base, MAX_JPEG_SCANS - n)
    assert admitted(ok) == (600, 800)
    assert decode_image(ok).shape == (600, 800, 3)
    bomb = repeat_scan(base, 3000)
    t0 = time.perf_counter()
    with pytest.raises(ImageReadError, match=f"more than {MAX_JPEG_SCANS} scans"):
        decode_image(bomb)
    assert time.perf_counter() - t0 < 0.5  # the marker walk, nothing decoded


# --------------------------------------------------- class 13: data shorter than the claim

@pytest.mark.parametrize("make, match", [
    (lambda d: with_sof(d, 4000, 3000), "needs at least"),
    (lambda d: d[:len(d) // 2], "truncated"),
    (lambda d: d[:-2], "no end-of-image marker"),
])
def test_a_jpeg_holding_less_than_its_header_claims_is_refused(make, match):
    data = make(jpeg(160, 120))
    with pytest.raises(ImageReadError, match=match):
        decode_image(data)


def cut_corpus() -> dict[str, bytes]:
    """Small JPEGs of every layout the walk meets: baseline, progressive, gray, restart
    markers, an EXIF thumbnail (a whole JPEG, EOI included, inside APP1)."""
    thumb = jpeg(16, 16, seed=2)
    app1 = b"Exif\0\0" + thumb
    main = jpeg(40, 24, seed=3)
    ok, rst = cv2.imencode(".jpg", np.full((24, 40, 3), 90, np.uint8),
                           [cv2.IMWRITE_JPEG_RST_INTERVAL, 1])
    assert ok
    return {"baseline": jpeg(40, 24), "progressive": jpeg(40, 24, progressive=True),
            "progressive smooth gray": jpeg(64, 32, True, gray=True, smooth=True),
            "restart markers": rst.tobytes(),
            "exif thumbnail": (main[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2)
                               + app1 + main[2:])}


@pytest.mark.parametrize("name", list(cut_corpus()))
def test_a_jpeg_cut_at_any_byte_is_refused_in_one_line_and_whole_it_decodes(name):
    """Every prefix, not a sample: OpenCV 4.5/4.6 decode a cut JPEG to gray below the cut
    (200 with 0 faces from the API); one marker walk must refuse them all."""
    data = cut_corpus()[name]
    assert decode_image(data).shape[:2] == (read_header(data).height, read_header(data).width)
    assert decode_image(data + b"a phone's trailer \xff\xd8").shape == decode_image(data).shape
    for cut in range(len(data) - 1):  # the last byte is EOI's D9: a cut keeps its FF
        with pytest.raises(ImageReadError) as info:
            decode_image(data[:cut])
        assert "\n" not in str(info.value) and len(str(info.value)) < 200, (cut, info.value)
        with pytest.raises(HeaderError):  # the API's checks: its 400, before the job queue
            read_header(data[:cut])
            check_jpeg_data(data[:cut])


# ------------------------------------------------------------ the differential corpus

# 4:4:4 JPEGs where this OpenCV can write them: IMWRITE_JPEG_SAMPLING_FACTOR is missing in
# opencv-python-headless 4.5.5 and Debian's 4.6.0 (the floor and apt-OpenCV rows).
JPEG_444 = ([(".jpg", [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])]
            if hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR") else [])


def corpus(seed: int = 23) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    files = []
    for k in range(12):
        w, h = rng.randint(1, 300), rng.randint(1, 300)
        img = np.random.default_rng(k).integers(0, 255, (h, w, 3), np.uint8)
        for ext, flags in ((".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
                           *JPEG_444, (".png", []), (".bmp", []), (".webp", []),
                           (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]), (".tiff", [])):
            ok, buf = cv2.imencode(ext, img if k % 3 else img[..., 0], flags)
            if ok:
                files.append((f"{k}{ext}", buf.tobytes()))
        files.append((f"{k}-raw.tiff", tiff(w, h, little=bool(k % 2))))
        files.append((f"{k}-rep.jpg", repeat_scan(jpeg(w + 8, h + 8, True, seed=k), 5)))
        # Crafted to lie ("!"): a size tag given twice, two images, two frame headers.
        files.append((f"{k}-dup.tiff!", tiff(w, h, extra=[(256, 4, w + 7)])))
        files.append((f"{k}-two.tiff!", tiff(w, h, second_ifd=True)))
        files.append((f"{k}-sof.jpg!", with_sof(jpeg(w, h, seed=k), w + 16, h)))
    mutated = []
    for name, data in files:  # header damage: the bytes a reader and a decoder interpret
        for m in range(6):
            b = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                b[rng.randrange(min(len(b), 160))] = rng.randrange(256)
            mutated.append((f"{name}~{m}", bytes(b)))
    return files + mutated


def test_every_admitted_file_decodes_to_its_claimed_shape():
    files = corpus()
    accepted = refused = undecodable = 0
    for name, data in files:
        claim = admitted(data)
        if claim is None:
            refused += 1
            continue
        accepted += 1
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            undecodable += 1  # refused by the decoder: the API's 400, no memory spent
            continue
        assert image.shape[:2] == claim, (name, claim, image.shape)
    clean = [n for n, _ in files if "~" not in n and "!" not in n]
    assert all(admitted(d) is not None for n, d in files if n in clean)
    print(f"{len(files)} files: {accepted} admitted ({undecodable} then undecodable), "
          f"{refused} refused")
    assert accepted > len(clean) and refused > 0


# ------------------------------------------------------------- end to end: detect, the API

def test_detect_refuses_each_lie_in_one_line_and_counts_decoding_in_latency(tmp_path):
    from runtime_fakes import run_edgeface, tiny_onnx

    model = tiny_onnx(tmp_path / "tiny.onnx")
    d = tmp_path / "in"
    d.mkdir()
    slow = repeat_scan(jpeg(2000, 1500, True, smooth=True), MAX_JPEG_SCANS - 12)
    (d / "a_slow_but_legal.jpg").write_bytes(slow)
    (d / "b_scan_bomb.jpg").write_bytes(repeat_scan(jpeg(640, 480, True, smooth=True),
                                                          5000))
    (d / "c_sof_lie.jpg").write_bytes(with_sof(jpeg(160, 120), 4000, 3000))
    (d / "d_dup_tag.tif").write_bytes(tiff(100, 100, extra=[(256, 4, 20000),
                                                            (257, 4, 20000)]))
    p = run_edgeface("detect", str(d), "-m", str(model))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    errs = [e for e in p.stderr.splitlines() if e.startswith("edgeface: error:")]
    assert len(errs) == 4 and errs[-1] == "edgeface: error: 3 of 4 inputs failed", p.stderr
    assert "more than 100 scans" in errs[0] and "needs at least" in errs[1]
    assert "tag 256 given twice" in errs[2]
    t0 = time.perf_counter()
    for _ in range(3):
        cv2.imdecode(np.frombuffer(slow, np.uint8), cv2.IMREAD_COLOR)
    decode_ms = (time.perf_counter() - t0) / 3 * 1e3
    line = next(x for x in p.stdout.splitlines() if "a_slow_but_legal" in x)
    reported = float(line.split("\t")[2].split()[0])
    assert reported >= 0.5 * decode_ms, (line, decode_ms)


def test_the_api_answers_400_for_each_lie(tmp_path):
    import http.client
    import json

    from runtime_fakes import tiny_onnx

    from edgeface.http.api import open_api
    from edgeface.http.latest import LatestSink
    from edgeface.http.server import StatusServer
    from edgeface.runtime.metrics import Metrics
    from edgeface.runtime.settings import DetectionSettings

    api = open_api(DetectionSettings(model=str(tiny_onnx(tmp_path / "tiny.onnx")), threads=1),
                   background=False)
    server = StatusServer(LatestSink(), Metrics(), "127.0.0.1", 0, api=api,
                          camera=False).start()
    try:
        cases = {"sof lie": (with_sof(jpeg(160, 120), 4000, 3000), "needs at least"),
                 "scan bomb": (repeat_scan(jpeg(1600, 1200, True, smooth=True), 20000),
                               "scans"),
                 "no EOI": (jpeg(160, 120)[:-2], "end-of-image"),
                 **{f"cut at {k}/7": (jpeg(160, 120, progressive=True)[
                     :len(jpeg(160, 120, progressive=True)) * k // 7], "truncated")
                    for k in range(1, 7)},
                 "good": (jpeg(160, 120), None)}
        for name, (body, match) in cases.items():
            c = http.client.HTTPConnection(server.host, server.port, timeout=30)
            t0 = time.monotonic()
            c.request("POST", "/detect", body, {"Content-Type": "image/jpeg"})
            r = c.getresponse()
            answer = json.loads(r.read())
            c.close()
            if match is None:
                assert r.status == 200, answer
                assert answer["results"][0]["latency_ms"] > 0
            else:
                assert r.status == 400 and match in answer["detail"], (name, answer)
                assert time.monotonic() - t0 < 2, name
    finally:
        server.close()
        api.close()
