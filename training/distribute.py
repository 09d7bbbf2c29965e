"""Which tf.distribute strategy a run trains under (`--strategy`), and which process writes.

Strategies must be chosen before TensorFlow touches a device: logical CPU devices can only be
configured, and MultiWorkerMirroredStrategy only created, at the start of a program.
"""
from __future__ import annotations

import json
import os

from runtime.core.errors import GanEdgeError

STRATEGIES = ("auto", "default", "mirrored", "multiworker")


def _tf_config() -> dict | None:
    """TF_CONFIG, checked: a cluster of task types each listing "host:port" addresses, and this
    process's task, whose index lies inside its type's list. A one-line error otherwise, before
    TensorFlow (which would fail with a traceback, or wait for a task that does not exist)."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except ValueError:
        raise GanEdgeError(f"TF_CONFIG is not valid JSON; {_TF_CONFIG_FORM}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster or not all(
            isinstance(addresses, list) and addresses
            and all(isinstance(a, str) and ":" in a for a in addresses)
            for addresses in cluster.values()):
        raise GanEdgeError(f"TF_CONFIG's cluster must map task types to lists of \"host:port\" "
                           f"addresses; {_TF_CONFIG_FORM}")
    task = config.get("task")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise GanEdgeError(f"TF_CONFIG's task must name this process's type, one of "
                           f"{', '.join(map(str, cluster))}; {_TF_CONFIG_FORM}")
    index, size = task.get("index", 0), len(cluster[task["type"]])
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
        raise GanEdgeError(f"TF_CONFIG's task index {index!r} is outside its cluster: "
                           f"{task['type']} has {size} address(es), so the index is 0 to "
                           f"{size - 1}; fix TF_CONFIG")
    return {"tasks": sum(len(addresses) for addresses in cluster.values()),
            "type": task["type"], "index": index, "has_chief": "chief" in cluster}


_TF_CONFIG_FORM = ('set it as {"cluster": {"worker": ["host:port", ...]}, "task": {"type": '
                   '"worker", "index": 0}}')


def is_multiworker(name: str) -> bool:
    """Whether --strategy `name` trains across processes ("auto" does under a TF_CONFIG cluster)."""
    if name not in STRATEGIES:
        raise GanEdgeError(f"unknown --strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    config = _tf_config()
    if name == "multiworker" and config is None:
        raise GanEdgeError("--strategy multiworker needs TF_CONFIG to name the cluster and this "
                           "process's task; see 'Several devices' in docs/training.md")
    return name == "multiworker" or (name == "auto" and config is not None
                                     and config["tasks"] > 1)


def cluster_size() -> int:
    """How many processes TF_CONFIG lists (0 without TF_CONFIG)."""
    config = _tf_config()
    return 0 if config is None else config["tasks"]


def is_writer(name: str) -> bool:
    """Whether this process evaluates and writes the run folder: in a multi-worker run only the
    chief task does (worker 0 when the cluster has no chief), as TensorFlow's guides advise."""
    if not is_multiworker(name):
        return True
    config = _tf_config()
    if config["has_chief"]:
        return config["type"] == "chief"
    return config["type"] == "worker" and config["index"] == 0


def make_strategy(name: str, cpu_devices: int | None = None):
    """Build the strategy for --strategy `name`: "auto" is multiworker under a TF_CONFIG cluster,
    mirrored with two or more GPUs (or --cpu-devices), else the default one-device strategy."""
    import tensorflow as tf

    multiworker = is_multiworker(name)
    if cpu_devices is not None:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
    if multiworker:
        return tf.distribute.MultiWorkerMirroredStrategy()
    # Every GPU, or else every logical CPU: MirroredStrategy() alone would take one CPU only.
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    if name == "mirrored" or (name == "auto" and len(devices) > 1):
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.get_strategy()


def describe(strategy) -> str:
    """One line for the log of a multi-replica run, e.g. "MirroredStrategy, 2 replicas"."""
    import tensorflow as tf

    kind = type(strategy).__name__
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        kind = "MultiWorkerMirroredStrategy"  # its class is CollectiveAllReduceStrategy
    return f"{kind}, {strategy.num_replicas_in_sync} replicas"
