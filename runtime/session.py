"""How the runtime opens an ONNX file: one onnxruntime session, quiet (onnxruntime's warnings
are for its developers, not for ganrun's users), and a one-line error naming the fix where the
file is missing or does not load. The generator, the discriminator and both classifiers open
theirs here."""
from __future__ import annotations

from pathlib import Path

from runtime.core.errors import GanEdgeError

CPU = ("CPUExecutionProvider",)


def open_session(path: Path, missing: str, fix: str, providers=CPU, threads: int = 0):
    """An onnxruntime InferenceSession on `path` with `providers` and `threads` CPU threads
    (0: one per core); GanEdgeError(`missing`) where there is no such file, and one that ends
    in `fix` where onnxruntime cannot load it."""
    ort = import_onnxruntime()
    if not path.is_file():
        raise GanEdgeError(missing)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # one small graph: parallel branches do not pay here
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=list(providers))
    except Exception as e:  # onnxruntime raises several types for unreadable models
        raise GanEdgeError(f"{path} is not a loadable ONNX model "
                           f"({str(e).splitlines()[0][:150]}); {fix}") from None


def import_onnxruntime():
    """The onnxruntime module, or a one-line error naming the install that brings it: the
    device wheel installed without its [cpu] or [gpu] extra has everything but onnxruntime."""
    try:
        import onnxruntime
    except ImportError as e:
        what = "is not installed" if e.name == "onnxruntime" else f"does not import ({e})"
        raise GanEdgeError(f"onnxruntime {what}; {_install_fix()}") from None
    return onnxruntime


def _install_fix() -> str:
    """pip's command that installs this package again with onnxruntime: from the wheel file or
    folder it was installed from (pip records it in direct_url.json), else by name."""
    import json
    from importlib import metadata
    for name in ("gan-edge-runtime", "gan-edge"):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        where, source = f"'{name}", json.loads(dist.read_text("direct_url.json") or "{}")
        if source.get("url", "").startswith("file://"):
            from urllib.parse import unquote, urlparse
            editable = source.get("dir_info", {}).get("editable")
            where = ("-e '" if editable else "'") + unquote(urlparse(source["url"]).path)
        return (f"install {name} with its extra for onnxruntime: pip install {where}[cpu]' "
                f"(or [gpu] for an NVIDIA GPU)")
    return "pip install onnxruntime (or onnxruntime-gpu for an NVIDIA GPU)"
