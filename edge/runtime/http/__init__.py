"""The device's HTTP server: live stream, snapshot, latest detections, health and metrics
(:mod:`.server`), fed by the newest processed frame (:mod:`.latest`)."""
