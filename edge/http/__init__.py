"""The device's HTTP server: live stream, snapshot, latest detections, health, metrics, the
page, face events and the image API (:mod:`.server`) on one asyncio event-loop thread
(:mod:`.protocol`, :mod:`.router`, :mod:`.limits`, :mod:`.auth`), fed by the newest processed
frame (:mod:`.latest`) through one JPEG worker thread (:mod:`.encoder`) shared by snapshots
and MJPEG viewers (:mod:`.mjpeg`); ``POST /detect`` (:mod:`.api`, :mod:`.multipart`,
:mod:`.ratelimit`) runs in its own worker thread (:mod:`.worker`). The page is package data
(``page.html``, :mod:`.page`).

It sits one floor above :mod:`edgeface.runtime`: it reads the run's metrics and borrows the
camera loop's detector (:mod:`edgeface.runtime.lend`), and ``edgeface run`` reaches it as an
output (:mod:`.sink`, which registers itself with the runtime's sinks); ``edgeface serve``
starts the server directly. The runtime never imports it."""
