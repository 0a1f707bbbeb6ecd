"""The compiled DCN sampler + one MatMul equals ONNX Runtime's DeformConv (within 1e-4) on
FeatherFace V1's 15 layer shapes and on general strides, pads and dilations."""

from __future__ import annotations

import platform

import numpy as np
import pytest
from dcn_reference import deform_conv_model, gemm, reference_inputs, session

from edgeface.inference.dcn import sampler
from edgeface.inference.dcn.shapes import FEATHERFACE_V1

pytestmark = pytest.mark.skipif(not sampler.available(),
                                reason=str(sampler.unavailable_reason()))

TOL = 1e-4  # issue 21's parity bound per layer


def _run_reference(x, weight, bias, offset, mask, out_hw, **geometry):
    model = deform_conv_model(x.shape, weight.shape, out_hw, with_mask=mask is not None,
                              **geometry)
    feeds = {"x": x, "w": weight, "offset": offset, "b": bias}
    if mask is not None:
        feeds["mask"] = mask
    return session(model).run(None, feeds)[0]


@pytest.mark.parametrize("layer", FEATHERFACE_V1, ids=[layer.name for layer in FEATHERFACE_V1])
def test_featherface_layers_match_onnxruntime(layer):
    rng = np.random.default_rng(abs(hash(layer.name)) % 2**32)
    s = layer.size
    x, weight, bias, offset, mask = reference_inputs(
        rng, 1, layer.in_channels, s, s, layer.out_channels, 3, 3, s, s)
    expected = _run_reference(x, weight, bias, offset, mask, (s, s))
    cols = sampler.sample_columns(sampler.to_nhwc(x), offset, mask, (3, 3))
    assert cols.shape == (1, s * s, 9 * layer.in_channels)
    got = gemm(cols, weight, bias, s, s)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)
    # the offsets did send samples outside the image (else the zero border went untested)
    ys = np.arange(s)[None, None, :, None] + offset[:, 0::2]
    assert (ys <= -1).any() and (ys >= s).any()


@pytest.mark.parametrize("geometry", [
    dict(kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1), dilations=(1, 1)),
    dict(kernel=(3, 2), strides=(1, 2), pads=(0, 1, 2, 0), dilations=(2, 1)),
    dict(kernel=(1, 1), strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1)),
], ids=["stride2", "asymmetric", "1x1"])
@pytest.mark.parametrize("with_mask", [True, False], ids=["mask", "no-mask"])
def test_general_geometry_matches_onnxruntime(geometry, with_mask):
    rng = np.random.default_rng(7)
    n, c, h, w, o = 2, 5, 11, 9, 3
    kh, kw = geometry["kernel"]
    (sh, sw), (pt, pl, pb, pr), (dh, dw) = geometry["strides"], geometry["pads"], \
        geometry["dilations"]
    oh = sampler.output_size(h, kh, sh, pt, pb, dh)
    owd = sampler.output_size(w, kw, sw, pl, pr, dw)
    x, weight, bias, offset, mask = reference_inputs(rng, n, c, h, w, o, kh, kw, oh, owd)
    mask = mask if with_mask else None
    expected = _run_reference(x, weight, bias, offset, mask, (oh, owd),
                              strides=(sh, sw), pads=(pt, pl, pb, pr), dilations=(dh, dw))
    cols = sampler.sample_columns(sampler.to_nhwc(x), offset, mask, (kh, kw), stride=(sh, sw),
                                  pads=(pt, pl, pb, pr), dilation=(dh, dw))
    np.testing.assert_allclose(gemm(cols, weight, bias, oh, owd), expected, rtol=0, atol=TOL)


def test_thread_count_does_not_change_the_columns():
    rng = np.random.default_rng(3)
    layer = FEATHERFACE_V1[0]  # 56 channels at 52x52: large enough to be split 7 ways
    s = layer.size
    x, _, _, offset, mask = reference_inputs(rng, 1, 56, s, s, 28, 3, 3, s, s)
    xt = sampler.to_nhwc(x)
    one = sampler.sample_columns(xt, offset, mask, threads=1)
    for threads in (2, 3, 7):
        np.testing.assert_array_equal(sampler.to_nhwc(x, threads=threads), xt)
        many = sampler.sample_columns(xt, offset, mask, threads=threads)
        np.testing.assert_allclose(many, one, rtol=0, atol=1e-6, err_msg=f"{threads} threads")


def test_a_band_of_output_rows_is_those_rows_of_the_whole():
    """sample(..., row0, rows) writes the columns of those output rows only (a GEMM then runs
    a band at a time), for 2 images, float and uint8 columns, with 2 threads."""
    rng = np.random.default_rng(9)
    n, c, s = 2, 14, 13
    x, _, _, offset, mask = reference_inputs(rng, n, c, s, s, 14, 3, 3, s, s)
    xt = sampler.to_nhwc(x)
    ext = sampler.extension()
    geometry = (n, s, s, c, s, s, 3, 3, 1, 1, 1, 1, 1, 1, 2)
    for quant, dtype in (((0.0, 0.0), np.float32), ((0.05, 37.0), np.uint8)):
        whole = np.empty((n, s, s, 9 * c), dtype)
        ext.sample(xt, offset, mask, whole, *geometry, *quant)
        for row0, rows in ((0, 5), (5, 5), (10, 3), (12, 1)):
            band = np.empty((n, rows, s, 9 * c), dtype)
            ext.sample(xt, offset, mask, band, *geometry, *quant, None, None, row0, rows)
            np.testing.assert_array_equal(band, whole[:, row0:row0 + rows])
    band = np.empty((n, 5, s, 9 * c), np.float32)
    for row0, rows in ((10, 5), (-1, 5), (0, 0)):
        with pytest.raises(ValueError, match="rows"):
            ext.sample(xt, offset, mask, band, *geometry, 0.0, 0.0, None, None, row0, rows)
    with pytest.raises(ValueError, match="cols"):  # a band's columns sized for the whole
        ext.sample(xt, offset, mask, band, *geometry, 0.0, 0.0, None, None, 0, 4)


def test_to_nhwc_and_preallocated_outputs():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    out = np.empty((2, 4, 5, 3), np.float32)
    assert sampler.to_nhwc(x, out=out) is out
    np.testing.assert_array_equal(out, x.transpose(0, 2, 3, 1))
    offset = np.zeros((2, 18, 4, 5), np.float32)
    cols = np.full((2, 20, 27), np.nan, np.float32)
    assert sampler.sample_columns(out, offset, None, out=cols) is cols
    # zero offsets, no mask: the centre tap (k = 4) is the input itself
    np.testing.assert_array_equal(cols[:, :, 12:15], out.reshape(2, 20, 3))


def test_bad_arguments_are_refused_not_read_out_of_bounds():
    x = np.zeros((1, 4, 4, 2), np.float32)
    offset = np.zeros((1, 18, 4, 4), np.float32)
    with pytest.raises(TypeError, match="float32"):
        sampler.sample_columns(x.astype(np.float64), offset, None)
    with pytest.raises(ValueError, match="offset must have shape"):
        sampler.sample_columns(x, offset[:, :9], None)
    with pytest.raises(ValueError, match="out must be"):
        sampler.sample_columns(x, offset, None, out=np.empty((1, 16, 17), np.float32))
    module = sampler._require()
    cols = np.empty((1, 16, 18), np.float32)
    with pytest.raises(ValueError, match="expected"):  # the C side checks sizes itself
        module.sample(x, offset, None, cols, 1, 5, 4, 2, 4, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1)


def test_disable_switch(monkeypatch):
    monkeypatch.setattr(sampler, "_loaded", False)
    monkeypatch.setattr(sampler, "_module", None)
    monkeypatch.setattr(sampler, "_reason", None)
    monkeypatch.setenv(sampler.DISABLE_ENV, "1")
    assert not sampler.available()
    assert sampler.DISABLE_ENV in sampler.unavailable_reason()
    with pytest.raises(RuntimeError, match=sampler.DISABLE_ENV):
        sampler.sample_columns(np.zeros((1, 3, 3, 1), np.float32),
                               np.zeros((1, 18, 3, 3), np.float32), None)


@pytest.fixture(scope="module")
def portable_twin(tmp_path_factory):
    """The sampler compiled with the x86-64-v3 clones off: the baseline (SSE2) code that a
    CPU without AVX2 runs, and the same C that aarch64 builds."""
    import importlib.util
    import shutil
    import subprocess
    import sysconfig
    from pathlib import Path

    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("no gcc to build the portable twin with")
    src = Path(sampler.__file__).with_name("_sampler.c")
    out = tmp_path_factory.mktemp("twin") / "_sampler.so"
    subprocess.run([gcc, "-shared", "-fPIC", "-O3", "-fno-trapping-math", "-pthread",
                    "-DEDGEFACE_DCN_NO_CLONES", f"-I{sysconfig.get_paths()['include']}",
                    str(src), "-o", str(out)], check=True)
    spec = importlib.util.spec_from_file_location("twin._sampler", out)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                    reason="the AVX2 clone exists on x86-64 only")
@pytest.mark.parametrize("c", [14, 56, 5])
def test_portable_twin_matches_the_cpu_dispatched_build(portable_twin, c):
    twin = portable_twin
    rng = np.random.default_rng(c)
    x, _, _, offset, mask = reference_inputs(rng, 1, c, 13, 13, 4, 3, 3, 13, 13)
    x = sampler.to_nhwc(x)
    args = (1, 13, 13, c, 13, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1)
    want = sampler.sample_columns(x, offset, mask)
    got = np.empty_like(want)
    twin.sample(x, offset, mask, got, *args)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)  # FMA rounds once, SSE2 twice
    want8, got8 = (np.empty(want.shape, np.uint8) for _ in range(2))
    sampler.extension().sample(x, offset, mask, want8, *args, 0.02, 100.0)
    twin.sample(x, offset, mask, got8, *args, 0.02, 100.0)
    diff = np.abs(got8.astype(int) - want8.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # a rounding tie, rarely
