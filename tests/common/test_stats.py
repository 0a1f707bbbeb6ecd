"""The runtime's percentiles equal numpy's (default, linear) without importing numpy.ma."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgeface.common.stats import percentiles

QS = (0, 1, 25, 50, 95, 99, 99.9, 100)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 257, 4096])
def test_percentiles_equal_numpys(n):
    rng = np.random.default_rng(n)
    values = rng.lognormal(-4, 0.5, n)
    np.testing.assert_allclose(percentiles(values, QS), np.percentile(values, QS),
                               rtol=1e-12, atol=0)


def test_percentiles_of_nothing_are_refused():
    with pytest.raises(ValueError):
        percentiles(np.array([]), (50,))


def test_percentiles_leave_numpy_ma_unimported():
    bare = subprocess.run([sys.executable, "-c", "import sys, numpy; print('numpy.ma' in "
                           "sys.modules)"], capture_output=True, text=True)
    if bare.stdout.strip() == "True":
        pytest.skip(f"numpy {np.__version__} imports numpy.ma itself (numpy 1.x; 2.x does not)")
    code = ("import sys, numpy as np\n"
            "from edgeface.common.stats import percentiles\n"
            "percentiles(np.arange(100.0), (50, 95))\n"
            "print('numpy.ma' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
