"""How much a run prints: the pipeline's lines, progress bars, trainer loss lines and the libraries' messages.

Two knobs, as in TRL's scripts: the `w2s_align` logger's level (`-q`: only the results; `-v`: also every trainer log
line) and the libraries' level (`--log-level`, default `warning`, for transformers, datasets, accelerate, TRL and
PEFT). Progress bars (training, labeling, scoring, dataset maps) and the trainer's loss lines show when the output is
a terminal, never in a log file. Library messages that are noise on every run are filtered one by one, by logger and
text, so that any other warning still reaches the user.

Example:

```python
>>> import logging
>>> from w2s_align.verbosity import configure
>>> configure("info", library_level="warning", progress=False)
>>> logging.getLogger("w2s_align").info("printed on stdout")
printed on stdout
```
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

# (logger, text): library messages printed on every run that say nothing about the user's run.
NOISE = (
    # transformers 5 reports every non-sharded layer when a model loads outside tensor parallelism.
    ("transformers.distributed.tensor_parallel", "were not sharded"),
    # On CPUs with AVX512-BF16, bitsandbytes announces at import that an optional kernel package is missing; it falls
    # back to its own kernels.
    ("bitsandbytes.backends.cpu.ops", "kernels-community"),
    # ... and offline, the `kernels` package it asks for that kernel announces that it cannot check its publisher.
    ("kernels._internals.hf_hub", "Skipping publisher trust check"),
    # Encoder reward models end sequences with their separator (W2SRewardTrainer sets it as the eos token), which the
    # Trainer then copies into the model config, announcing it at every stage.
    ("transformers.trainer_utils", "The tokenizer has new PAD/BOS/EOS tokens"),
)


class _Stdout(logging.Handler):
    """Writes each record's message to the current `sys.stdout` (so that redirections and test captures see it)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), flush=True)


def configure(level: str = "info", library_level: str = "warning", progress: bool | None = None) -> None:
    """Set up the run's output: [`configure_output`], then [`configure_libraries`].

    Args:
        level (`str`, *optional*, defaults to `"info"`):
            Level of the `w2s_align` logger, printed plainly on stdout: `info` shows a line per stage, `debug` also
            the trainers' log lines (loss, learning rate, ...) as they are written, `warning` only what went wrong.
        library_level (`str`, *optional*, defaults to `"warning"`):
            Level of the libraries' loggers (transformers, datasets, accelerate, TRL, PEFT).
        progress (`bool` or `None`, *optional*, defaults to `None`):
            Progress bars on or off; `None`: on when stderr is a terminal and `level` is not above `info`.
    """
    configure_libraries(library_level, configure_output(level, progress))


def configure_output(level: str = "info", progress: bool | None = None) -> bool:
    """The `w2s_align` logger and the environment the libraries read when imported; returns whether progress bars
    are on. Imports nothing heavy, so that a command can check its input before importing torch."""
    logger = logging.getLogger("w2s_align")
    logger.handlers = [_Stdout()]
    logger.setLevel(level.upper())
    logger.propagate = False
    if progress is None:
        progress = sys.stderr.isatty() and logger.isEnabledFor(logging.INFO)
    if not progress:
        os.environ.setdefault("TQDM_DISABLE", "1")  # TRL's reference log-prob pass draws a bar of its own
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return progress


def configure_datasets(library_level: str = "warning", progress: bool = False) -> None:
    """`datasets`' log level and progress bars (without importing torch: the command line cuts the splits first)."""
    import datasets

    datasets.logging.set_verbosity(logging.getLevelName(library_level.upper()))
    if progress:
        datasets.enable_progress_bars()
    else:
        datasets.disable_progress_bars()


def configure_libraries(library_level: str = "warning", progress: bool = False) -> None:
    """The libraries' log levels, progress bars and the narrow filters of their noise (imports transformers)."""
    from .device import accelerator_available

    if not accelerator_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # else DeepSpeed, when installed, warns on import
    import transformers

    configure_datasets(library_level, progress)
    transformers.logging.set_verbosity(logging.getLevelName(library_level.upper()))
    for name in ("accelerate", "trl", "peft"):
        logging.getLogger(name).setLevel(library_level.upper())
    if progress:
        transformers.utils.logging.enable_progress_bar()
    else:
        transformers.utils.logging.disable_progress_bar()
    for name, text in NOISE:
        logging.getLogger(name).addFilter(lambda record, text=text: text not in record.getMessage())
    # torch's DataLoader warns on every epoch of a CPU run that pin_memory has no accelerator to pin for.
    warnings.filterwarnings("ignore", message=".*pin_memory.*no accelerator.*")


def progress_enabled() -> bool:
    """Whether progress bars are on (see [`configure`]): trainers, labeling and scoring draw theirs then."""
    from transformers.utils import logging as hf_logging

    return hf_logging.is_progress_bar_enabled()


def trainer_lines_enabled() -> bool:
    """Whether the trainers' raw log lines are printed without a terminal (`w2s_align` at debug level)."""
    return logging.getLogger("w2s_align").isEnabledFor(logging.DEBUG)


def batch_starts(total: int, batch_size: int, desc: str):
    """The start offsets of a scoring loop's batches, under a progress bar (main process, when bars are on)."""
    from transformers.utils import logging as hf_logging

    from .distributed import is_main_process

    steps = range(0, total, batch_size)
    return hf_logging.tqdm(steps, desc=desc, unit="batch", leave=False, disable=not is_main_process())
