"""The device's HTTP server: live stream, snapshot, latest detections, health and metrics
(:mod:`.server`) on one asyncio event-loop thread (:mod:`.protocol`, :mod:`.router`,
:mod:`.limits`), fed by the newest processed frame (:mod:`.latest`) through one JPEG worker
thread (:mod:`.encoder`) shared by snapshots and MJPEG viewers (:mod:`.mjpeg`)."""
