"""The HTTP server's limits: how many connections, viewers and bytes it accepts and how long
it waits for a client. Every default carries the number that justifies it; a
:class:`~edgeface.http.server.StatusServer` takes each one as a keyword argument."""

from __future__ import annotations

from dataclasses import dataclass

from edgeface.runtime.settings import HTTP_API_RATE, HTTP_API_TOTAL_RATE

#: Open connections at once (idle keep-alive and half-sent ones included). systemd gives a
#: service a soft RLIMIT_NOFILE of 1024; half of it leaves the rest to the model, camera,
#: video and log files. An idle connection costs one file descriptor and ~7 KB of memory
#: (200 idle sockets: +1.4 MB, benchmarks/results/http_servers.md), so 512 are ~3.5 MB.
#: Past it a new connection whose request head has arrived takes the slot of the one that
#: has waited longest for a request head (idle or half-sent); when every one is busy with a
#: request it gets a quick 503 (``/healthz`` is still answered, see below). One whose head
#: has not arrived is refused (edgeface.http.acceptor): it never evicts another.
MAX_CONNECTIONS = 512
#: Connections past the cap whose request head is still read (for ``/healthz``, answered;
#: anything else 503) instead of closed at once. Each waits at most ``OVERFLOW_TIMEOUT``.
OVERFLOW_CONNECTIONS = 16
OVERFLOW_TIMEOUT = 1.0
#: MJPEG viewers at once. 8 x 15 fps x ~110 KB (a 720p frame at quality 80) is ~13 MB/s,
#: what a Pi 3B+'s USB-attached gigabit link sustains with room to spare.
MAX_STREAMS = 8
#: Frames per second sent to each viewer (a dashboard needs no more; a Pi 4 runs the
#: 720p model at ~5-15 fps, so this rarely binds there).
STREAM_MAX_FPS = 15.0
#: JPEG encodes per second at most, shared by snapshots and streams (an encode is never
#: repeated for the same frame either). One 720p encode is ~4 ms on x86-64 (measured) and
#: an estimated ~25 ms on a Pi 4 core, so 15/s bounds encoding at ~40 % of one Pi core
#: however many clients ask; a snapshot is then at most 1/15 s older than the newest frame.
JPEG_MAX_FPS = 15.0
#: Requests per second served at most, all endpoints but ``/healthz`` (which stays cheap and
#: always answers). The loop thread spends 0.09-0.16 ms of CPU per request on x86-64
#: (measured; estimated ~0.5 ms on a Pi 4), so 500/s caps it near a quarter of a Pi core;
#: past it requests queue briefly (then 503) instead of a tight client loop taking the CPU
#: (and the GIL) from inference.
REQUEST_MAX_RATE = 500.0
#: Refused requests (4xx but 429: malformed, unauthorized, unknown path) answered per second
#: at most, all clients together; past it they wait their turn, then the connection closes
#: unanswered. A token-less client looping on 401s or garbage heads got ~1,900 answers a
#: second and took the camera from 35 to 25 fps; 100/s is ~1.5 % of an x86-64 core.
REFUSAL_MAX_RATE = 100.0
#: Snapshots per second served at most, all clients together: 120 x ~110 KB (720p) is
#: ~13 MB/s, every client's share of the <= 15 distinct JPEGs a second there are. Without
#: a budget, 30 keep-alive loops fetched ~1,900/s (200 MB/s) on loopback and cost the
#: device ~0.3 of an x86-64 core (the "asyncio, no budget" column of
#: benchmarks/results/http_servers.md).
SNAPSHOT_MAX_RATE = 120.0
#: Seconds a request may queue for its turn before it gets 503 + Retry-After instead.
MAX_QUEUE_WAIT = 2.0
#: Seconds for a new connection to send its whole request head (slowloris). A LAN client
#: sends it in one packet; 10 s covers a phone on bad Wi-Fi.
HEADER_TIMEOUT = 10.0
#: Seconds a kept-alive connection may sit between requests before it is closed (a browser
#: polling every 5-10 s keeps its connection; nginx's default is 75 s, but each idle one
#: holds a slot of ``MAX_CONNECTIONS``).
IDLE_TIMEOUT = 30.0
#: Seconds a response may wait for the client to take more bytes (a snapshot, a stream
#: frame) before the client is dropped as stalled: 10 s of no progress at 15 fps is 150
#: frames a viewer never saw.
WRITE_TIMEOUT = 10.0
#: Seconds to receive a request body of up to ``MAX_BODY_BYTES`` (8 MB at 1 MB/s).
BODY_TIMEOUT = 30.0
#: Bytes a second a request body must average once it has had ``BODY_GRACE`` seconds (then
#: 408): 8 KB/s takes a 1 MB photo over a poor phone link. Without it a body trickled at
#: 1 byte/s lasted the whole 30 s body timeout, and 5 of them held the image API's queue.
BODY_MIN_RATE = 8 * 1024
BODY_GRACE = 5.0
#: Bytes of request line + headers; past it 431. Node.js's default is 16 KiB; our URLs and a
#: bearer token need well under 1 KiB.
MAX_HEADER_BYTES = 16 * 1024
#: Header lines per request (http.client's _MAXHEADERS); past it 431.
MAX_HEADERS = 100
#: Largest request body a handler may read (8 images of ~1 MB for a later POST /detect).
MAX_BODY_BYTES = 8 << 20
#: Bytes queued in user space per connection before a write waits for the client (asyncio's
#: default high-water mark is 64 KiB; a 720p JPEG is ~110 KB, so a viewer's backlog is at
#: most about one frame on top of the kernel's socket buffer).
WRITE_BUFFER_HIGH = 128 * 1024
#: Seconds ``close()`` lets open responses finish before it cuts connections.
SHUTDOWN_GRACE = 0.5
#: listen() backlog. A burst of connects past it loses SYNs, and each lost SYN costs its
#: client a 1 s retransmit; 200 idle sockets reconnecting at once (all closed by the same
#: header timeout) are such a burst, so the queue holds the whole connection cap. Linux caps
#: it at net.core.somaxconn (4096 since 5.4); it costs nothing until used.
BACKLOG = 1024


@dataclass(frozen=True)
class HttpLimits:
    """The limits one server runs with (defaults: the module constants above)."""

    max_connections: int = MAX_CONNECTIONS
    overflow_connections: int = OVERFLOW_CONNECTIONS
    overflow_timeout: float = OVERFLOW_TIMEOUT
    max_streams: int = MAX_STREAMS
    stream_max_fps: float = STREAM_MAX_FPS
    jpeg_max_fps: float = JPEG_MAX_FPS
    request_max_rate: float = REQUEST_MAX_RATE
    snapshot_max_rate: float = SNAPSHOT_MAX_RATE
    refusal_max_rate: float = REFUSAL_MAX_RATE
    max_queue_wait: float = MAX_QUEUE_WAIT
    header_timeout: float = HEADER_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    write_timeout: float = WRITE_TIMEOUT
    body_timeout: float = BODY_TIMEOUT
    body_min_rate: float = BODY_MIN_RATE
    body_grace: float = BODY_GRACE
    max_header_bytes: int = MAX_HEADER_BYTES
    max_headers: int = MAX_HEADERS
    max_body_bytes: int = MAX_BODY_BYTES
    write_buffer_high: int = WRITE_BUFFER_HIGH
    shutdown_grace: float = SHUTDOWN_GRACE

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_streams", "max_header_bytes", "max_headers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("header_timeout", "idle_timeout", "write_timeout", "body_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 seconds")


# -- POST /detect (the image API: edgeface.http.api) ---------------------------------
#: Images per request (multipart parts); more is a 400.
API_MAX_IMAGES = 8
#: Pixels one uploaded image may declare (checked from its header before decoding; over it:
#: 413). 4096x3072 takes a 12 Mpx phone photo (4032x3024). Decoded it is 36 MB of BGR, and
#: the decoder's buffers up to ~2x that again: next to the camera loop's ~180 MB that stays
#: well inside a 512 MB service. A lower --max-image-pixels (or the memory limit's budget)
#: lowers it further.
API_MAX_PIXELS = 4096 * 3072
#: Requests admitted at once (the one running plus those waiting for the worker); past it
#: 503 + Retry-After. Admission comes once the body has arrived, so a slow upload never
#: holds a place (5 bodies trickled at 1 byte/s locked every other client out for 30 s).
API_QUEUE_REQUESTS = 5
#: Body bytes of the admitted requests together: two full 8 MB requests.
API_QUEUE_BYTES = 16 << 20
#: Body bytes received for requests not yet admitted, all uploads together (past it: 503,
#: connection closed): with the queue's bytes, what uploads can hold whatever the number of
#: connections; four full bodies arriving at once.
API_UPLOAD_BYTES = 32 << 20
#: Seconds a request may wait for the worker before it gets 503 instead: in `run` the
#: worker decodes only on CPU the camera loop leaves idle and the loop lends only its share
#: of time, so on a saturated board a request may not get a turn, and a client must hear
#: that in bounded time.
API_QUEUE_TIMEOUT = 15.0
#: Requests per second per client address and for all clients together (token buckets,
#: twice as deep): the ``--http-api-rate`` / ``--http-api-total-rate`` defaults, declared with
#: those flags in :mod:`edgeface.runtime.settings`, where the reason for the numbers is.
API_CLIENT_RATE = HTTP_API_RATE.default
API_CLIENT_BURST = 10
API_GLOBAL_RATE = HTTP_API_TOTAL_RATE.default
API_GLOBAL_BURST = 20
#: Client addresses whose buckets are remembered (the least recently seen are forgotten:
#: a forgotten client starts with a full bucket, which is what an idle one has anyway).
API_CLIENTS_TRACKED = 1024


@dataclass(frozen=True)
class ApiLimits:
    """The limits of one image API (``POST /detect``; defaults: the constants above)."""

    max_pixels: int = API_MAX_PIXELS
    max_images: int = API_MAX_IMAGES
    max_body_bytes: int = MAX_BODY_BYTES
    queue_requests: int = API_QUEUE_REQUESTS
    queue_bytes: int = API_QUEUE_BYTES
    queue_timeout: float = API_QUEUE_TIMEOUT
    upload_bytes: int = API_UPLOAD_BYTES
    client_rate: float = API_CLIENT_RATE
    client_burst: float = API_CLIENT_BURST
    global_rate: float = API_GLOBAL_RATE
    global_burst: float = API_GLOBAL_BURST

    @classmethod
    def rates(cls, client: float, total: float) -> ApiLimits:
        """Requests per second per client and for all together, each with a burst of twice
        that (at least 1): what ``--http-api-rate`` / ``--http-api-total-rate`` set."""
        return cls(client_rate=client, client_burst=max(1, 2 * client), global_rate=total,
                   global_burst=max(1, 2 * total))
