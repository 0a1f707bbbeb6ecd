"""Hostile and well-behaved clients for benchmarks/http_load.py's ``--hostile`` scenario
(issue 23, classes 4 and 6), asyncio over loopback:

- ``slow_upload``: POST /detect declaring a 1 MB body and sending it at 1 byte/s; when the
  server answers or closes, it starts again at once.
- ``half_open``: a connection that sends a partial request head and never finishes it;
  when the server closes it, it opens another at once.
- ``detect_client``: the well-behaved client, one POST /detect of a real face image every
  ``pause`` s on a fresh connection, waiting for each answer; every status is counted.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

SLOW_LENGTH = 1 << 20  # the body a slow upload declares


async def slow_upload(port: int, end: float, st: Counter) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < end:
        writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /detect HTTP/1.1\r\nHost: d\r\nContent-Type: image/jpeg\r\n"
                         b"Content-Length: %d\r\n\r\n\xff" % SLOW_LENGTH)
            st["slow_upload_opened"] += 1
            answer = asyncio.ensure_future(reader.readuntil(b"\r\n\r\n"))
            while not answer.done() and loop.time() < end:
                await asyncio.wait([answer], timeout=1.0)
                if not answer.done():
                    writer.write(b"\xd8")  # one more byte a second
            if answer.done():
                head = answer.result()
                st[f"slow_upload_{int(head.split(b' ', 2)[1])}"] += 1
            else:
                answer.cancel()
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            st["slow_upload_closed"] += 1
        finally:
            if writer is not None:
                writer.close()


async def half_open(port: int, end: float, st: Counter) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < end:
        writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            st["half_open_opened"] += 1
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: d\r\n")
            await asyncio.wait_for(reader.read(), max(end - loop.time(), 0.01))
            st["half_open_closed_by_server"] += 1
        except asyncio.TimeoutError:
            pass  # the load is over
        except (OSError, asyncio.IncompleteReadError):
            st["half_open_errors"] += 1
            await asyncio.sleep(0.05)
        finally:
            if writer is not None:
                writer.close()


def face_image() -> bytes:
    """A real face photo from the shared WIDERFace validation images (~150 KB JPEG)."""
    from _shared import SHARED

    folder = Path(SHARED) / "datasets" / "widerface-val-native" / "images"
    return min(folder.rglob("*.jpg")).read_bytes()


async def detect_client(port: int, end: float, st: Counter, body: bytes, pause: float,
                        latencies: list) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < end:
        t0 = loop.time()
        writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /detect HTTP/1.1\r\nHost: d\r\nContent-Type: image/jpeg\r\n"
                         b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            code = int(head.split(b" ", 2)[1])
            await reader.read()
            st[f"detect_{code}"] += 1
            if code == 200:
                latencies.append(loop.time() - t0)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError,
                IndexError):
            st["detect_errors"] += 1
        finally:
            if writer is not None:
                writer.close()
        await asyncio.sleep(max(0.0, pause - (loop.time() - t0)))


def detect_summary(st: Counter, latencies: list) -> dict:
    sent = sum(v for k, v in st.items() if k.startswith("detect_"))
    lat = sorted(latencies) or [float("nan")]
    return {"detect_sent": sent,
            "detect_success": round(st.get("detect_200", 0) / sent, 3) if sent else None,
            "detect_latency_s_p50": round(lat[len(lat) // 2], 3),
            "detect_latency_s_max": round(lat[-1], 3)}
