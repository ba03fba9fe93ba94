"""Device names: the default device, a checked `--device`, and `--gpus` / TASK.md `gpus` read
as device strings. Alone so that TASK.md's validation (autosae.config) can check them without
importing the harness that runs on them, nor torch before a device is actually looked at."""

from __future__ import annotations

import os
import sys

from autosae.errors import AutosaeError

CUDA_DEVICE_NODES = ("/dev/nvidiactl", "/dev/dxg")
"""On Linux, CUDA needs the NVIDIA driver's control device (or WSL 2's /dev/dxg)."""


def cuda_available() -> bool:
    """torch.cuda.is_available(), answered without torch where the answer is plainly no: a Linux
    machine with no NVIDIA device node has no CUDA, and asking torch would cost every command
    (init, status, a replayed run) 1.5 s of starting torch to say so."""
    if sys.platform.startswith("linux") and not any(os.path.exists(node) for node in CUDA_DEVICE_NODES):
        return False
    import torch

    return torch.cuda.is_available()


def cuda_count() -> int:
    if not cuda_available():
        return 0
    import torch

    return torch.cuda.device_count()


def default_device() -> str:
    return "cuda" if cuda_available() else "cpu"


def resolve_device(device: str | None) -> str:
    """`device` (None: the default one), refused in one line when it is not there or not a device."""
    device = device or default_device()
    if device.startswith("cuda") and not cuda_available():
        raise AutosaeError(
            f"--device {device}: no CUDA GPU is visible "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"
        )
    if device != "cpu" and not device.startswith("cuda"):
        raise AutosaeError(f"--device {device}: expected cpu, cuda or cuda:N")
    return device


def parse_gpus(text: str | list | int | None) -> list[str] | None:
    """`0,1` / [0, 1] / `all` / `cpu,cpu` -> device strings (None: no slots asked for)."""
    if text is None:
        return None
    if isinstance(text, int):
        items = [text]
    elif isinstance(text, str):
        items = [t.strip() for t in text.split(",") if t.strip()]
    else:
        items = list(text)
    if items == ["all"]:
        count = cuda_count()
        if count == 0:
            raise AutosaeError("gpus all: no CUDA GPU is visible")
        return [f"cuda:{i}" for i in range(count)]
    devices = []
    for item in items:
        name = str(item)
        if name.isdigit():
            devices.append(f"cuda:{int(name)}")
        elif name == "cpu" or name.startswith("cuda:") and name[5:].isdigit():
            devices.append(name)
        else:
            raise AutosaeError(f"gpus {text!r}: expected GPU indices (0,1), cuda:N, cpu or all; got {name!r}")
    if not devices:
        raise AutosaeError(f"gpus {text!r}: no device named")
    gpus = [d for d in devices if d != "cpu"]
    if len(set(gpus)) != len(gpus):
        raise AutosaeError(f"gpus {text!r}: a GPU is named twice")
    return devices


def check_devices(devices: list[str]) -> list[str]:
    """Refuse GPUs that are not there, in one line, before anything starts."""
    gpus = [d for d in devices if d != "cpu"]
    if gpus:
        count = cuda_count()
        missing = [d for d in gpus if int(d.split(":")[1]) >= count]
        if missing:
            raise AutosaeError(
                f"gpus: {', '.join(missing)} not visible ({count} CUDA GPU"
                f"{'' if count == 1 else 's'} visible, CUDA_VISIBLE_DEVICES="
                f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"
            )
    return devices
