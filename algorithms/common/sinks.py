"""Optional logging sinks beside the CSV files: TensorBoard and Weights & Biases (off by default)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from algorithms.common.config import ConfigError

VALID_LOGGERS = ("tensorboard", "wandb")


class Sink:
    def log(self, kind: str, step: int, row: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class TensorBoardSink(Sink):
    def __init__(self, run_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise ConfigError("logger 'tensorboard' needs the tensorboard package: pip install .[logging]") from err
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def log(self, kind: str, step: int, row: dict[str, Any]) -> None:
        for key, value in row.items():
            if isinstance(value, (int, float)) and key != "step":
                self.writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        self.writer.close()


class WandbSink(Sink):
    def __init__(self, run_dir: Path, run_id: str, config: dict[str, Any]):
        try:
            import wandb
        except ImportError as err:
            raise ConfigError("logger 'wandb' needs the wandb package: pip install .[logging]") from err
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "mbdpo-bench"), id=run_id,
                              resume="allow", dir=str(run_dir), config=config, name=run_id)

    def log(self, kind: str, step: int, row: dict[str, Any]) -> None:
        self.run.log({f"{kind}/{k}": v for k, v in row.items() if isinstance(v, (int, float))}, step=step)

    def close(self) -> None:
        self.run.finish()


def make_sinks(names: list[str], run_dir: Path, run_id: str, config: dict[str, Any]) -> list[Sink]:
    sinks: list[Sink] = []
    for name in names:
        if name == "tensorboard":
            sinks.append(TensorBoardSink(run_dir))
        elif name == "wandb":
            sinks.append(WandbSink(run_dir, run_id, config))
        else:
            raise ConfigError(f"unknown logger {name!r}; valid: {', '.join(VALID_LOGGERS)} (CSV is always written)")
    return sinks
