import os

# Quiet TensorFlow's C++ start-up logging in tests that import it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest

#: Words of a skip that means "a dependency is missing" (pytest.importorskip, the skipif markers).
_MISSING = ("not installed", "could not import", "No module named")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CI=true, as .ci/run is run), a test skipped for a missing dependency fails instead:
    the `test` extra installs every framework, numba, Dask and pyarrow, so such a skip means a
    README feature went untested (issue 19). Other skips (no git, not Linux) stay skips."""
    outcome = yield
    rep = outcome.get_result()
    if os.environ.get("CI", "").lower() in ("", "0", "false") or not rep.skipped:
        return
    reason = str(rep.longrepr[-1]) if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
    if any(w in reason for w in _MISSING):
        rep.outcome = "failed"
        rep.longrepr = f"skipped in CI for a missing dependency (the test extra must install it): {reason}"
