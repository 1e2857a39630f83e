"""What a run prints: -q / -v / --log-level, progress bars only where asked, library noise filtered one message at a
time (other warnings still reach the user)."""

import logging
import warnings

import pytest
import yaml

from w2s_align.cli import main
from w2s_align.verbosity import batch_starts, configure


@pytest.fixture(autouse=True)
def _restore():
    yield
    configure("info", "warning", progress=False)


def test_library_level_and_progress_bars(capsys):
    import transformers

    configure("info", "error", progress=False)
    assert transformers.logging.get_verbosity() == logging.ERROR
    assert list(batch_starts(10, 4, "scoring pairs")) == [0, 4, 8]
    assert "scoring pairs" not in capsys.readouterr().err
    configure("info", "info", progress=True)
    assert transformers.logging.get_verbosity() == logging.INFO
    assert list(batch_starts(10, 4, "scoring pairs")) == [0, 4, 8]
    assert "scoring pairs:   0%|          | 0/3" in capsys.readouterr().err


def test_noise_is_filtered_by_message_and_other_warnings_still_show():
    configure("info", "warning", progress=False)
    logger = logging.getLogger("transformers.distributed.tensor_parallel")
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger.addHandler(handler)
    try:
        logger.warning("The following layers were not sharded: a, b")
        logger.warning("tensor parallel plan is invalid")
    finally:
        logger.removeHandler(handler)
    assert seen == ["tensor parallel plan is invalid"]
    with pytest.warns(FutureWarning, match="a future change"):
        warnings.warn("a future change", FutureWarning, stacklevel=1)


@pytest.mark.slow
def test_quiet_prints_only_the_results_and_verbose_every_trainer_line(tiny_recipe, tmp_path, capsys):
    tiny_recipe["methods"] = ["xent"]
    tiny_recipe["training"]["trainer_kwargs"] = {"logging_steps": 2}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    assert main(["run", str(path), "-q"]) == 0
    out = capsys.readouterr().out
    assert "training " not in out and "'loss':" not in out
    assert out.lstrip().startswith("tiny: test accuracy over 1 seed(s), 40 pairs")
    tiny_recipe["output_dir"] = str(tmp_path / "verbose")
    path.write_text(yaml.safe_dump(tiny_recipe))
    assert main(["run", str(path), "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "training tiny-l2 <- tiny-l1 (xent), seed 0" in out
    assert out.count("'loss':") == 3 * 3  # three models, 48 pairs in batches of 8, a line every 2 steps


def _in_a_terminal(command: list[str]) -> str:
    """What `command` writes to a pseudo-terminal of 40 x 120 characters, as a user's terminal shows it (tqdm draws
    no bar in a terminal that reports 0 columns)."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    # TQDM_DISABLE: set in this process by an earlier command run here without a terminal (w2s_align.verbosity)
    env = {key: value for key, value in os.environ.items() if key != "TQDM_DISABLE"}
    process = subprocess.Popen(command, stdin=follower, stdout=follower, stderr=follower, close_fds=True, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=600) == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_a_terminal_shows_the_progress_bars_of_training(tiny_recipe, tiny_model_dir, tmp_path):
    import json
    import re
    import sys

    from w2s_align.synthetic import generate_pairs

    data = tmp_path / "pairs.jsonl"
    rows = generate_pairs(16, seed=0).select_columns(["prompt", "chosen", "rejected"])
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    flags = ["--model_name_or_path", str(tiny_model_dir), "--dataset_name", str(data), "--max_steps", "2"]
    flags += ["--output_dir", str(tmp_path / "reward"), "--per_device_train_batch_size", "4", "--report_to", "none"]
    out = _in_a_terminal([sys.executable, "-m", "w2s_align", "reward", *flags, "--bf16", "false"])
    assert re.search(r"100%\|█+\| 2/2 \[", out), out[-2000:]  # the training bar, drawn to its end
    tiny_recipe["methods"] = ["xent"]
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(tiny_recipe))
    out = _in_a_terminal([sys.executable, "-m", "w2s_align", "run", str(tmp_path / "recipe.yaml")])
    # a training bar for each of the three models (48 pairs in 6 steps of 8), drawn to its end
    assert len(re.findall(r" 0%\|\s+\| 0/6 \[", out)) == 3 and re.search(r"100%\|█+\| 6/6 \[", out), out[-2000:]
