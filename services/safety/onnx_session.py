"""One ONNX Runtime session per safety model, on the CPU, with one thread."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import onnxruntime as ort

from services.safety.errors import ModelLoadError


def load_session(path: Path) -> ort.InferenceSession:
    """A CPU session that runs on the calling thread alone: the gateway runs each check in a worker
    thread next to vision encoding, and one intra-op thread per model keeps checks from crowding out
    the event loop and each other."""
    if not path.is_file():
        raise ModelLoadError(f"no model file at {path}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's errors derive from Exception alone
        raise ModelLoadError(f"cannot load the model at {path}: {error}") from error


def packaged_file(package: str, name: str) -> Path:
    """A file inside an installed package, found without importing the package (NudeNet's import pulls
    in OpenCV, which we do not use)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"the {package!r} package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / name


def check_input(session: ort.InferenceSession, shape: tuple[int | None, ...]) -> None:
    """Refuse a model whose input is not `shape` (None: any size), so a wrong file fails at load."""
    actual = session.get_inputs()[0].shape
    fits = len(actual) == len(shape) and all(
        want is None or got == want for got, want in zip(actual, shape, strict=True)
    )
    if not fits:
        raise ModelLoadError(f"model input has shape {actual}, expected {shape}")
