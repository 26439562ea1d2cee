"""Test setup: 8 simulated CPU devices and full-precision matmuls, set before JAX is first imported."""

import os

os.environ.setdefault("JAX_NUM_CPU_DEVICES", "8")
os.environ.setdefault("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import importlib.util  # noqa: E402
import pathlib  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
# Programs compiled once (e.g. a training step) are reused across tests and runs instead of recompiled.
jax.config.update("jax_compilation_cache_dir", os.environ.get("JAXREENACT_TEST_CACHE", "/tmp/jaxreenact-jax-cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)

HAVE_TORCH = importlib.util.find_spec("torch") is not None
GOLDEN = pathlib.Path(__file__).parent / "golden"
WEIGHTS_DIR = os.environ.get("JAXREENACT_WEIGHTS")


# What the suite needs beyond the package (pyproject's `test` and `dev` extras, and torch). Locally a missing one
# skips its tests; with CI=true it fails the run at once, so a CI cannot stay green while whole groups skip.
TEST_DEPENDENCIES = {"torch": "torch==2.13.0", "face_alignment": "face-alignment", "cv2": "opencv-python",
                     "skimage": "scikit-image", "xdist": "pytest-xdist"}  # fmt: skip


def missing_test_dependencies() -> list[str]:
    import shutil

    out = [f"{mod} (pip install {pip})" for mod, pip in TEST_DEPENDENCIES.items() if not importlib.util.find_spec(mod)]
    if shutil.which("ruff") is None:
        out.append("the ruff executable (pip install ruff)")
    return out


def pytest_sessionstart(session):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        missing = missing_test_dependencies()
        if missing:
            raise pytest.UsageError(
                "CI=true and test dependencies are missing, so their tests would skip: " + ", ".join(missing)
                + ". Install them (pip install -e '.[torch,dev,test]') or unset CI to run with skips."
            )  # fmt: skip


def pytest_collection_modifyitems(config, items):
    skip_torch = pytest.mark.skip(reason="PyTorch is not installed (pip install torch==2.13.0)")
    skip_weights = pytest.mark.skip(
        reason="real pretrained weights not available: set JAXREENACT_WEIGHTS to a folder of converted checkpoints"
    )
    for item in items:
        if "torch" in item.keywords and not HAVE_TORCH:
            item.add_marker(skip_torch)
        if "weights" in item.keywords and not (WEIGHTS_DIR and os.path.isdir(WEIGHTS_DIR)):
            item.add_marker(skip_weights)


@pytest.fixture(scope="session")
def golden_dir():
    return GOLDEN
