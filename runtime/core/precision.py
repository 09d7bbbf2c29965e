"""The precisions an export comes in, and where each one runs best."""
from runtime.core.errors import GanEdgeError

PRECISIONS = ("fp32", "int8", "fp16")
# fp16 is a GPU format: onnxruntime's CPU provider runs it slower than fp32.
TARGET = {"fp32": "cpu", "int8": "cpu", "fp16": "gpu"}


def parse_precisions(value: str) -> tuple[str, ...]:
    """A comma-separated --precision value, checked: ("int8", "fp16") for "int8,fp16"."""
    chosen = tuple(p.strip() for p in value.split(",") if p.strip())
    unknown = [p for p in chosen if p not in PRECISIONS]
    if unknown or not chosen:
        raise GanEdgeError(f"unknown precision {', '.join(unknown) or '(none)'}; choose from "
                           f"{', '.join(PRECISIONS)}")
    return chosen
