"""The device's HTTP server: live stream, snapshot, latest detections, health, metrics, the
page, face events and the image API (:mod:`.server`) on one asyncio event-loop thread
(:mod:`.protocol`, :mod:`.router`, :mod:`.limits`, :mod:`.auth`), fed by the newest processed
frame (:mod:`.latest`) through one JPEG worker thread (:mod:`.encoder`) shared by snapshots
and MJPEG viewers (:mod:`.mjpeg`); ``POST /detect`` (:mod:`.api`, :mod:`.multipart`,
:mod:`.ratelimit`) runs in its own worker thread (:mod:`.worker`)."""
