"""``edgeface bench``: latency and memory on this platform, one module per job.
``runs`` (what to measure, :func:`run_benchmark`) drives one ``worker`` process per
(model, threads) on the ``frames`` (real or synthetic images); ``stats`` summarizes the
stage times, ``records`` identifies and labels each model, ``results`` holds the result
schema, validation and files, ``tables`` renders Markdown, ``report`` merges result files
into the docs' table (docs/bench.md); ``op_profile`` gives per-operator time shares (ONNX
Runtime profiler) and ``peers`` the detectors measured beside FeatherFace.
"""
