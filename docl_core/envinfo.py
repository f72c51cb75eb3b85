"""What machine and library versions produced a number (saved in runs, printed by benchmarks)."""
from __future__ import annotations

import platform
import sys
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def versions() -> dict[str, str]:
    """python, torch, numpy, pandas versions and the platform string."""
    import numpy
    import pandas
    import torch
    return {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": numpy.__version__,
            "pandas": pandas.__version__, "platform": platform.platform()}
