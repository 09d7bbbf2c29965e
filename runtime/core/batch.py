"""Samples per onnxruntime call when the caller does not say (ganrun --batch,
Generator.generate): MAX_DEFAULT_BATCH, or fewer where the graph's largest tensor would pass
CALL_TENSOR_BYTES in one call. Larger calls of such a graph gain no speed and multiply its
memory, and each new batch size's tensors are allocated afresh, which tensors of hundreds of MB
pay for in page faults (docs/ganrun.md)."""

MAX_DEFAULT_BATCH = 256
CALL_TENSOR_BYTES = 256 << 20
DEFAULT_BATCH_TEXT = (f"{MAX_DEFAULT_BATCH}, or fewer for a model whose largest tensor would pass "
                      f"{CALL_TENSOR_BYTES >> 20} MB in one call")


def default_batch(largest_tensor_bytes: int) -> int:
    """The batch for a graph whose largest tensor takes `largest_tensor_bytes` a sample (0: not
    stated, as in files exported before ganexport wrote gan.largest_tensor_bytes)."""
    if largest_tensor_bytes == 0:
        return MAX_DEFAULT_BATCH
    return max(1, min(MAX_DEFAULT_BATCH, CALL_TENSOR_BYTES // largest_tensor_bytes))
