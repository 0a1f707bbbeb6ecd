"""Host-side model conversion: PyTorch -> ONNX export and INT8 quantization. Modules:
:mod:`~edgeface.quantize.export` (``edgeface export``), :mod:`~edgeface.quantize.formats`
(what ``edgeface quantize`` makes: one table of formats, their options and builders),
:mod:`~edgeface.quantize.int8` (the ``edgeface quantize --int8`` pipeline,
:func:`~edgeface.quantize.int8.quantize_int8`, in named steps),
:mod:`~edgeface.quantize.config` (:class:`~edgeface.quantize.config.Int8Config`,
:class:`~edgeface.quantize.config.Int8Job`, defaults, operator sets),
:mod:`~edgeface.quantize.ort_quant` (the ONNX Runtime quantization calls: pre-processing,
calibration, ``quantize_static``), :mod:`~edgeface.quantize.graph` (graph inspection, blocks
and exclusions, float nodes, finalizing), :mod:`~edgeface.quantize.compaction` (smaller file,
same numerics; size breakdown), :mod:`~edgeface.quantize.guard` (the accuracy guard and the
search for blocks kept in float), :mod:`~edgeface.quantize.latency` (FP32/INT8 latency,
interleaved) and :mod:`~edgeface.quantize.report` (the report, the rejection carrying it, and
where both are written). The calibration images and ORT's calibration data reader are in
:mod:`edgeface.calibration.calib_data`.
"""
