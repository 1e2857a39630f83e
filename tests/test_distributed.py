"""Scale-out: accelerate configs, the pipeline on 2 CPU processes (gloo) against 1, LoRA and 4-bit QLoRA rungs."""

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml
from datasets import Dataset

from w2s_align.pipeline import W2SPipeline
from w2s_align.recipe_yaml import recipe_from_dict

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "accelerate_configs"
AUDIT = Path(__file__).resolve().parent / "audit"  # the write audit's sitecustomize
EXPECTED = {
    "single_gpu.yaml": ("NO", 1),
    "multi_gpu.yaml": ("MULTI_GPU", 8),
    "deepspeed_zero2.yaml": ("DEEPSPEED", 8),
    "deepspeed_zero3.yaml": ("DEEPSPEED", 8),
    "deepspeed_zero3_offload.yaml": ("DEEPSPEED", 8),
    "multi_node_zero3.yaml": ("DEEPSPEED", 16),
    "fsdp2.yaml": ("FSDP", 8),
    "cpu_multi_process.yaml": ("MULTI_GPU", 2),
}


def test_every_accelerate_config_parses_with_accelerates_loader():
    from accelerate.commands.config.config_args import load_config_from_file

    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(EXPECTED)
    for name, (kind, processes) in EXPECTED.items():
        config = load_config_from_file(str(CONFIGS / name))
        assert config.distributed_type.value == kind, name
        assert config.num_processes == processes, name
        if kind == "DEEPSPEED":
            # accelerate refuses any precision setting beside a DeepSpeed config file: its "auto" follows the trainer
            assert config.mixed_precision is None, f"{name}: no mixed_precision beside deepspeed_config_file"
            assert (ROOT / config.deepspeed_config["deepspeed_config_file"]).is_file(), name
        else:
            assert config.mixed_precision == "no", f"{name}: precision is derived from the device, not fixed here"
    assert load_config_from_file(str(CONFIGS / "cpu_multi_process.yaml")).use_cpu is True


# Builds both W2S trainer configs under the environment `accelerate launch --config_file FILE` gives its processes,
# computed by accelerate's own launch code (as `accelerate launch` does it, without starting the processes).
LAUNCH_ENVIRONMENT = """
import json, os, sys
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env, prepare_simple_launcher_cmd_env
from w2s_align import W2SDPOConfig, W2SRewardConfig

results = {}
for path in sys.argv[1:]:
    for key in [key for key in os.environ if key.startswith(("ACCELERATE_", "FSDP_"))]:
        del os.environ[key]  # the launcher starts from this process's environment: none of the last file's
    args, defaults, mp_from_config_flag = _validate_launch_command(
        # port 0: accelerate's check of its default port would fail beside a launch of another test on this machine
        launch_command_parser().parse_args(["--config_file", path, "--main_process_port", "0", "train.py"])
    )
    if args.use_deepspeed and not args.cpu:
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config_flag else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        env = prepare_deepspeed_cmd_env(args)[1]
    elif (args.use_fsdp or args.multi_gpu) and not args.cpu:
        env = prepare_multi_gpu_env(args)
    else:
        env = prepare_simple_launcher_cmd_env(args)[1]
    os.environ.update({key: value for key, value in env.items() if key.startswith(("ACCELERATE_", "FSDP_"))})
    try:
        configs = [cls(output_dir="unused", report_to=[]) for cls in (W2SRewardConfig, W2SDPOConfig)]
        results[os.path.basename(path)] = [config.deepspeed_plugin is not None for config in configs]
    except Exception as error:
        results[os.path.basename(path)] = f"{type(error).__name__}: {error}"
print(json.dumps(results))
"""


def test_every_accelerate_config_builds_the_trainer_configs_in_the_environment_accelerate_launch_sets(tmp_path):
    script = tmp_path / "launch_environment.py"
    script.write_text(LAUNCH_ENVIRONMENT)
    files = [str(CONFIGS / name) for name in EXPECTED]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ACCELERATE_", "FSDP_"))}
    # From the repository root, as docs/distributed.md says to launch: the DeepSpeed files name their JSON from there.
    result = subprocess.run([sys.executable, str(script), *files], capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    built = json.loads(result.stdout.strip().splitlines()[-1])
    for name, (kind, _) in EXPECTED.items():
        assert isinstance(built[name], list), f"{name}: {built[name]}"
        assert built[name] == [kind == "DEEPSPEED"] * 2, name  # both configs run DeepSpeed exactly when it is asked


def _fill_auto(value, batch=8):
    """Replace HF's "auto" placeholders as the Trainer would for a single process with micro-batch `batch`."""
    if isinstance(value, dict):
        concrete = {
            "train_batch_size": batch,
            "train_micro_batch_size_per_gpu": batch,
            "gradient_accumulation_steps": 1,
            "gradient_clipping": 1.0,
            "enabled": False,
        }
        return {
            key: concrete[key] if item == "auto" and key in concrete else _fill_auto(item, batch)
            for key, item in value.items()
        }
    if value == "auto":
        return 1_000_000  # bucket sizes and thresholds
    return value


@pytest.mark.parametrize("name", ["zero2.json", "zero3.json", "zero3_offload.json"])
def test_deepspeed_configs_pass_deepspeeds_validation(name):
    deepspeed_config = pytest.importorskip("deepspeed.runtime.config", reason="deepspeed is an optional extra")
    raw = json.loads((CONFIGS / "deepspeed" / name).read_text())
    config = deepspeed_config.DeepSpeedConfig(_fill_auto(raw))
    assert config.zero_optimization_stage == raw["zero_optimization"]["stage"]
    if name == "zero3_offload.json":
        assert config.zero_config.offload_param.device == "cpu"
    with pytest.raises(ValueError, match="stage"):  # the validation is real: a wrong type is refused
        deepspeed_config.DeepSpeedConfig(_fill_auto({**raw, "zero_optimization": {"stage": "three"}}))


def _free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def _launch_command(processes: int, config: str, launcher: list[str], program: list[str]) -> list[str]:
    """A port of its own unless `launcher` names one: launches of tests on other xdist workers run at the same time
    (accelerate's default port would be taken by whichever started first)."""
    accelerate = Path(sys.executable).with_name("accelerate")
    port = [] if "--main_process_port" in launcher else ["--main_process_port", _free_port()]
    return [
        str(accelerate), "launch", "--config_file", str(CONFIGS / config), "--num_processes", str(processes),
        *port, *launcher, *program,
    ]  # fmt: skip


def _launch_env(audit: Path, **extra: str) -> dict[str, str]:
    # The write audit (tests/audit) in every launched process; DeepSpeed's CPU accelerator (no effect on the others).
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "W2S_ALIGN_WRITE_LOG": str(audit), "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(AUDIT), os.environ.get("PYTHONPATH")]))
    return {**env, "DS_ACCELERATOR": "cpu", **extra}


def _launch(
    program: list[str],
    audit: Path,
    processes: int,
    tmp_path: Path,
    config: str = "cpu_multi_process.yaml",
    **env: str,
) -> subprocess.CompletedProcess:
    """`accelerate launch --config_file accelerate_configs/<config>` of `program` (a script and its arguments, or
    `-m w2s_align run RECIPE`) on CPU processes, from the repository root (where the DeepSpeed files name their JSON
    from)."""
    command = _launch_command(processes, config, [], program)
    # The timeout only turns a hang into a failure; no test here asserts a speed.
    return subprocess.run(
        command, capture_output=True, text=True, env=_launch_env(audit, **env), cwd=ROOT, timeout=900
    )


requires_launcher = pytest.mark.skipif(
    shutil.which("accelerate") is None and not Path(sys.executable).with_name("accelerate").exists(),
    reason="the accelerate launcher is not installed",
)


@pytest.mark.slow
@requires_launcher
def test_two_cpu_processes_give_the_same_results_as_one_and_write_each_artifact_once(tiny_recipe, tmp_path):
    tiny_recipe["analysis"] = {"n_bootstrap": 100}
    # Same global batch: 2 processes x 4 pairs, against 1 process x 8 pairs.
    tiny_recipe["training"]["per_device_train_batch_size"] = 4
    two = {**tiny_recipe, "output_dir": str(tmp_path / "two")}
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(two))
    result = _launch(["-m", "w2s_align", "run", str(tmp_path / "two.yaml")], tmp_path / "two.audit", 2, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(synthetic, 2 processes)" in result.stdout
    assert result.stdout.count("training tiny-l1 (ground truth)") == 1  # one log, from the main process

    one = {**tiny_recipe, "output_dir": str(tmp_path / "one")}
    one["training"] = {**tiny_recipe["training"], "per_device_train_batch_size": 8}
    os.environ["W2S_ALIGN_WRITE_LOG"] = str(tmp_path / "one.audit")
    try:
        W2SPipeline(recipe_from_dict(one), log=lambda _: None).run()
    finally:
        del os.environ["W2S_ALIGN_WRITE_LOG"]

    writes = [line.split("\t") for line in (tmp_path / "two.audit").read_text().splitlines()]
    paths = [path for _, path in writes]
    assert {rank for rank, _ in writes} == {"0"}, "only the main process writes"
    assert len(paths) == len(set(paths)), "each artifact is written exactly once"
    one_paths = [line.split("\t")[1] for line in (tmp_path / "one.audit").read_text().splitlines()]

    def shape(path: str, run: str) -> str:  # the stage hashes (in stage and label file names) hold the batch
        return re.sub(r"-[0-9a-f]{12}(?=[/-])", "", path.replace(str(tmp_path / run), ""))

    assert sorted(shape(p, "two") for p in paths) == sorted(shape(p, "one") for p in one_paths)
    # Stated tolerance: data-parallel training on CPU changes only the summation order of the gradients, so every
    # saved margin agrees to 1e-4 and every accuracy and PGR is identical.
    metrics = {name: json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("one", "two")}
    for key in metrics["one"]["models"]:
        a = Dataset.from_parquet(str(tmp_path / "one" / "predictions" / f"{key}.parquet"))
        b = Dataset.from_parquet(str(tmp_path / "two" / "predictions" / f"{key}.parquet"))
        assert np.abs(np.asarray(a["margin"]) - np.asarray(b["margin"])).max() < 1e-4, key
        assert metrics["one"]["models"][key]["accuracy"] == metrics["two"]["models"][key]["accuracy"]
    assert [r["pgr"] for r in metrics["one"]["students"]] == [r["pgr"] for r in metrics["two"]["students"]]


@pytest.mark.slow
@requires_launcher
def test_the_trainer_command_trains_one_model_on_two_processes(tiny_model_dir, tmp_path):
    from w2s_align.synthetic import generate_pairs

    pairs = generate_pairs(16, seed=0).select_columns(["prompt", "chosen", "rejected"])
    pairs.add_column("soft_label", [0.9, 0.2] * 8).to_json(tmp_path / "weak_labels.jsonl")
    config = {
        "model_name_or_path": str(tiny_model_dir),
        "dataset_name": str(tmp_path / "weak_labels.jsonl"),
        "output_dir": str(tmp_path / "out"),
        "per_device_train_batch_size": 4,
        "num_train_epochs": 1,
        "save_strategy": "epoch",
        "report_to": [],
    }
    (tmp_path / "reward.yaml").write_text(yaml.safe_dump(config))
    command = ["-m", "w2s_align", "reward", "--config", str(tmp_path / "reward.yaml")]
    result = _launch(command, tmp_path / "audit", 2, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # 16 pairs in global batches of 2 processes x 4: two optimizer steps, one model saved once.
    assert [path.name for path in (tmp_path / "out").glob("checkpoint-*")] == ["checkpoint-2"]
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert result.stdout.count(f"model saved to {tmp_path / 'out'}") == 1


@pytest.mark.slow
@requires_launcher
def test_bad_input_under_two_processes_stops_every_process_with_one_message(tiny_recipe, tmp_path):
    tiny_recipe["data"] = {
        "source": "preference",
        "files": {"all": str(tmp_path / "missing.jsonl")},
        "gt_size": 4,
        "w2s_size": 4,
    }
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(tiny_recipe))
    result = _launch(["-m", "w2s_align", "run", str(tmp_path / "bad.yaml")], tmp_path / "bad.audit", 2, tmp_path)
    assert result.returncode != 0
    assert result.stderr.count("error: ") == 1 and "missing.jsonl: data file not found" in result.stderr
    assert not (Path(tiny_recipe["output_dir"]) / "stages").exists() or not list(
        (Path(tiny_recipe["output_dir"]) / "stages").glob("train-*")
    )


@pytest.mark.slow
@requires_launcher
def test_a_busy_output_directory_stops_every_process_with_one_message(tiny_recipe, tmp_path):
    from w2s_align.run_lock import RunLock

    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(tiny_recipe))
    with RunLock(tiny_recipe["output_dir"]):  # as another run would hold it
        result = _launch(["-m", "w2s_align", "run", str(tmp_path / "recipe.yaml")], tmp_path / "audit", 2, tmp_path)
    assert result.returncode != 0
    assert result.stderr.count("error: ") == 1 and "another w2s-align run is using it" in result.stderr
    assert not (Path(tiny_recipe["output_dir"]) / "stages").exists()


@pytest.mark.slow
@requires_launcher
def test_a_failure_on_one_rank_ends_every_process(tiny_recipe, tmp_path):
    """Rank 1 fails mid-training (as on an out-of-memory error); rank 0, waiting in the gradient all-reduce, must not
    wait forever: the launcher ends the job, the error is shown, and the half-trained stage is not marked done."""
    script = tmp_path / "fail_on_rank_1.py"
    script.write_text(
        "import os, sys\n"
        "from w2s_align import cli\n"
        "from w2s_align.reward_trainer import W2SRewardTrainer\n"
        "if os.environ.get('RANK') == '1':\n"
        "    def fail(*args, **kwargs):\n"
        "        raise RuntimeError('simulated failure on rank 1')\n"
        "    W2SRewardTrainer.compute_loss = fail\n"
        "sys.exit(cli.main(['run', sys.argv[1]]))\n"
    )
    tiny_recipe["methods"] = ["xent"]
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(tiny_recipe))
    result = _launch([str(script), str(tmp_path / "recipe.yaml")], tmp_path / "audit", 2, tmp_path)
    assert result.returncode != 0
    assert "simulated failure on rank 1" in result.stderr
    stages = Path(tiny_recipe["output_dir"]) / "stages"
    assert not list(stages.glob("train-*/DONE.json"))


@pytest.mark.slow
@pytest.mark.parametrize("quantized", [False, True], ids=["lora", "qlora-4bit"])
def test_lora_and_qlora_reward_rungs(tiny_recipe, wide_model_dir, quantized):
    strong = tiny_recipe["ladder"][1]
    if quantized:
        pytest.importorskip("bitsandbytes")
        strong["model"] = str(wide_model_dir)
    strong["training"] = {
        "lora": {"r": 4, "alpha": 8, "target_modules": ["c_attn", "c_fc"]},
        "load_in_4bit": quantized,
    }
    tiny_recipe["methods"] = ["xent"]
    tiny_recipe["analysis"] = {"n_bootstrap": 100}
    metrics = W2SPipeline(recipe_from_dict(tiny_recipe), log=lambda _: None).run()
    run_dir = Path(tiny_recipe["output_dir"])
    (stage,) = (run_dir / "stages").glob("train-tiny-l2-gt-seed0-*")
    assert (stage / "model" / "adapter_config.json").is_file()
    from safetensors import safe_open

    with safe_open(str(stage / "model" / "adapter_model.safetensors"), "pt") as handle:
        keys = list(handle.keys())
    assert any("lora_A" in key for key in keys) and any(key.endswith("score.weight") for key in keys)
    if quantized:
        config = json.loads((stage / "model" / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"]
    for key in ("tiny-l2.gt.seed0", "tiny-l2.from-tiny-l1.xent.seed0"):  # the ceiling and the student it taught
        predictions = Dataset.from_parquet(str(run_dir / "predictions" / f"{key}.parquet"))
        assert predictions.num_rows == 40 and np.isfinite(predictions["margin"]).all()
        assert metrics["models"][key]["accuracy"] == pytest.approx(np.mean(predictions["correct"]))


# --------------------------------------------------------------------------------------------------- DeepSpeed on CPU
requires_deepspeed = pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None, reason="deepspeed is an optional extra (w2s_align[deepspeed])"
)


def _margins(run_dir: Path) -> dict[str, np.ndarray]:
    return {
        path.stem: np.asarray(Dataset.from_parquet(str(path))["margin"])
        for path in sorted((run_dir / "predictions").glob("*.parquet"))
    }


def _assert_margins_of_one_process(recipe: dict, tmp_path: Path) -> None:
    """The 2-process run in `tmp_path/two` saved every model's margins as the same recipe on one process with the same
    global batch does, to 1e-4: the summation order of the gradients differs, nothing else."""
    one = {**recipe, "output_dir": str(tmp_path / "one")}
    batch = recipe["training"]["per_device_train_batch_size"]
    one["training"] = {**recipe["training"], "per_device_train_batch_size": 2 * batch}
    W2SPipeline(recipe_from_dict(one), log=lambda _: None).run()
    expected, margins = _margins(tmp_path / "one"), _margins(tmp_path / "two")
    assert margins.keys() == expected.keys()
    for key, values in expected.items():
        assert np.abs(margins[key] - values).max() < 1e-4, key


def _assert_whole_models(run_dir: Path) -> None:
    """No saved tensor is empty: a model saved from one ZeRO-3 shard holds tensors of shape [0]."""
    from safetensors import safe_open

    files = list((run_dir / "stages").glob("**/*.safetensors"))
    assert files
    for path in files:
        with safe_open(str(path), "pt") as handle:
            empty = [key for key in handle.keys() if 0 in handle.get_slice(key).get_shape()]
        assert not empty, f"{path}: empty tensors {empty[:3]}"


def _assert_trained_with(run_dir: Path, stage: int) -> None:
    """Every trained stage says DeepSpeed ran with this ZeRO stage on 2 processes."""
    done = [json.loads(path.read_text()) for path in (run_dir / "stages").glob("train-*/DONE.json")]
    assert done
    for summary in done:
        assert summary["launch"] == {"processes": 2, "distributed_type": "DEEPSPEED", "zero_stage": stage}


def _assert_each_file_written_once_by_rank_0(audit: Path) -> None:
    writes = [line.split("\t") for line in audit.read_text().splitlines()]
    paths = [path for _, path in writes]
    assert {rank for rank, _ in writes} == {"0"} and len(paths) == len(set(paths))


def _two_processes(recipe: dict, tmp_path: Path, config: str, program: list[str] | None = None, **env: str):
    """`recipe` with half the per-device batch, written to a file and launched on 2 processes with `config`."""
    two = {**recipe, "output_dir": str(tmp_path / "two")}
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(two))
    program = program or ["-m", "w2s_align", "run"]
    return _launch([*program, str(tmp_path / "two.yaml")], tmp_path / "two.audit", 2, tmp_path, config, **env)


@pytest.fixture
def half_batch_recipe(tiny_recipe):
    tiny_recipe["methods"] = ["xent"]
    tiny_recipe["analysis"] = {"n_bootstrap": 100}
    tiny_recipe["training"]["per_device_train_batch_size"] = 4  # 2 processes x 4 against 1 process x 8
    # 42 pairs leave 2 for an epoch's last step: process 0 holds them and 2 fillers, process 1 only fillers.
    tiny_recipe["data"].update(gt_size=42, w2s_size=42)
    return tiny_recipe


@pytest.mark.slow
@requires_launcher
@requires_deepspeed
@pytest.mark.parametrize(
    ("config", "stage"),
    [("deepspeed_zero2.yaml", 2), ("deepspeed_zero3.yaml", 3), ("deepspeed_zero3_offload.yaml", 3)],
)
def test_deepspeed_on_two_cpu_processes_gives_the_one_process_results(config, stage, half_batch_recipe, tmp_path):
    result = _two_processes(half_batch_recipe, tmp_path, config)
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_trained_with(tmp_path / "two", stage)
    _assert_whole_models(tmp_path / "two")
    _assert_each_file_written_once_by_rank_0(tmp_path / "two.audit")
    _assert_margins_of_one_process(half_batch_recipe, tmp_path)


# Kills or freezes its own process (rank `W2S_TEST_RANK`) at optimizer step `W2S_TEST_AT` of the first student stage.
STOP_ONE_RANK = """
import os, signal, sys, time
import transformers
from w2s_align import cli

if os.environ.get("RANK") == os.environ["W2S_TEST_RANK"]:
    step = transformers.Trainer.training_step

    def training_step(self, *args, **kwargs):
        if "from-" in self.args.output_dir and self.state.global_step >= int(os.environ["W2S_TEST_AT"]):
            if os.environ.get("W2S_TEST_STOPPED"):  # when it stopped, for the test's measure of the others' end
                open(os.environ["W2S_TEST_STOPPED"], "w").write(repr(time.time()))
            os.kill(os.getpid(), getattr(signal, os.environ["W2S_TEST_SIGNAL"]))
        return step(self, *args, **kwargs)

    transformers.Trainer.training_step = training_step
sys.exit(cli.main(["run", sys.argv[1]]))
"""


@pytest.mark.slow
@requires_launcher
@requires_deepspeed
def test_a_zero3_run_killed_mid_training_resumes_from_its_checkpoint_to_the_same_results(half_batch_recipe, tmp_path):
    half_batch_recipe["ladder"][1]["training"] = {"trainer_kwargs": {"save_steps": 2}}
    script = tmp_path / "stop_one_rank.py"
    script.write_text(STOP_ONE_RANK)
    kill = {"W2S_TEST_RANK": "1", "W2S_TEST_AT": "3", "W2S_TEST_SIGNAL": "SIGKILL"}
    killed = _two_processes(half_batch_recipe, tmp_path, "deepspeed_zero3.yaml", [str(script)], **kill)
    assert killed.returncode != 0
    (student,) = (tmp_path / "two" / "stages").glob("train-tiny-l2.from-*")
    assert not (student / "DONE.json").exists() and (student / "checkpoints" / "checkpoint-2").is_dir()
    resumed = _two_processes(half_batch_recipe, tmp_path, "deepspeed_zero3.yaml")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout and "checkpoint-2" in resumed.stdout
    _assert_trained_with(tmp_path / "two", 3)
    _assert_whole_models(tmp_path / "two")
    _assert_margins_of_one_process(half_batch_recipe, tmp_path)


@pytest.mark.slow
@requires_launcher
@requires_deepspeed
def test_a_zero3_lora_rung_saves_whole_adapters_and_scores_like_one_process(half_batch_recipe, tmp_path):
    half_batch_recipe["ladder"][1]["training"] = {"lora": {"r": 4, "alpha": 8, "target_modules": ["c_attn", "c_fc"]}}
    result = _two_processes(half_batch_recipe, tmp_path, "deepspeed_zero3.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    (ceiling,) = (tmp_path / "two" / "stages").glob("train-tiny-l2-gt-*")
    assert (ceiling / "model" / "adapter_config.json").is_file()
    _assert_whole_models(tmp_path / "two")
    _assert_margins_of_one_process(half_batch_recipe, tmp_path)


@pytest.fixture
def half_batch_dpo_recipe(half_batch_recipe):
    half_batch_recipe["task"] = "dpo"
    half_batch_recipe["data"].update(gt_size=30, w2s_size=30, test_size=24)  # a last step of 6 pairs: 4 + 2
    half_batch_recipe["dpo"] = {"beta": 0.1, "sft": True}
    return half_batch_recipe


@pytest.mark.slow
@requires_launcher
@requires_deepspeed
def test_a_zero3_dpo_recipe_saves_whole_sft_policies_and_gives_the_one_process_results(
    half_batch_dpo_recipe, tmp_path
):
    result = _two_processes(half_batch_dpo_recipe, tmp_path, "deepspeed_zero3.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((tmp_path / "two" / "stages").glob("sft-*/model/model.safetensors"))
    _assert_whole_models(tmp_path / "two")  # the SFT stages' models included
    _assert_margins_of_one_process(half_batch_dpo_recipe, tmp_path)


@pytest.mark.slow
@requires_launcher
def test_dpo_on_two_processes_draws_the_global_batches_of_one(half_batch_dpo_recipe, tmp_path):
    """SFT batches grouped by length over all processes: 2 x 4 trains on the same pairs per step as 1 x 8."""
    result = _two_processes(half_batch_dpo_recipe, tmp_path, "cpu_multi_process.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_margins_of_one_process(half_batch_dpo_recipe, tmp_path)


@pytest.mark.slow
@requires_launcher
def test_fsdp_on_a_cpu_is_refused_with_one_line(tiny_recipe, tmp_path):
    result = _two_processes(tiny_recipe, tmp_path, "fsdp2.yaml")
    assert result.returncode != 0
    assert result.stderr.count("error: FSDP needs GPUs") == 1
    assert not (tmp_path / "two" / "stages").exists()


def _two_nodes(recipe_path: Path, tmp_path: Path, script: Path | None = None, cwds=(ROOT, ROOT), **env: str):
    """Two launches of one process each, as machine 0 and 1 of a 2-node job over loopback."""
    port = _free_port()
    program = [str(script)] if script else ["-m", "w2s_align", "run"]
    nodes = []
    for rank in (0, 1):
        launcher = ["--num_machines", "2", "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1",
                    "--main_process_port", port]  # fmt: skip
        command = _launch_command(2, "cpu_multi_process.yaml", launcher, [*program, str(recipe_path)])
        audit = tmp_path / f"node{rank}.audit"
        nodes.append(
            subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=_launch_env(audit, **env),
                cwd=cwds[rank],
                start_new_session=True,  # its own process group: the test can end the node and its workers
            )
        )
    return nodes


def _end(node: subprocess.Popen) -> None:
    """End a node with its workers. A frozen worker keeps its output pipes open and outlives its launcher, outside the
    launcher's process group (torch's elastic agent starts each worker in a session of its own), so every process
    whose command line names the node's recipe is killed too."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.pid, signal.SIGKILL)
    for process in psutil.process_iter(["cmdline"]):
        if node.args[-1] in (process.info["cmdline"] or []):
            with contextlib.suppress(psutil.Error):
                process.kill()
    node.communicate()


def _finish(node: subprocess.Popen, timeout: float) -> tuple[int, str]:
    """The node's exit code and error output; a node still running after `timeout` (a hang) is killed and fails."""
    try:
        _, err = node.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _end(node)
        pytest.fail("the node did not end")
    return node.returncode, err


@pytest.mark.slow
@requires_launcher
@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGSTOP"], ids=["killed", "frozen"])
def test_two_nodes_end_when_one_rank_dies_or_freezes(signal_name, half_batch_recipe, tmp_path):
    """A rank killed, or frozen (it never answers), mid-training: the other node ends within the recipe's
    `ddp_timeout` (20 s here; the process group is made with it), and the stage is not marked done."""
    half_batch_recipe["training"]["trainer_kwargs"] = {"ddp_timeout": 20}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(half_batch_recipe))
    script = tmp_path / "stop_one_rank.py"
    script.write_text(STOP_ONE_RANK)
    stop = {"W2S_TEST_RANK": "1", "W2S_TEST_AT": "2", "W2S_TEST_SIGNAL": signal_name}
    stop["W2S_TEST_STOPPED"] = str(tmp_path / "stopped")
    node0, node1 = _two_nodes(tmp_path / "recipe.yaml", tmp_path, script, **stop)
    try:
        code, err = _finish(node0, timeout=600)  # only against a hang: the time is asserted below
        ended = time.time()
        assert code != 0
    finally:
        _end(node1)  # a frozen rank is stopped, not ended: the job's other node is what must end on its own
    # within the recipe's ddp_timeout (20 s; the default would wait 30 minutes) and 30 s, in one line of ours (the
    # launcher, accelerate's torchrun, adds its own report of the failed process after it)
    assert ended - float((tmp_path / "stopped").read_text()) < 20 + 30
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: another process of the launch died"), err[-3000:]
    assert not re.search(r"^\[rank\d+\]: Traceback", err, flags=re.M), err[-3000:]  # none of ours
    stages = Path(half_batch_recipe["output_dir"]) / "stages"
    assert not list(stages.glob("train-*.from-*/DONE.json"))


@pytest.mark.slow
@requires_launcher
def test_nodes_without_a_shared_output_directory_are_refused_with_one_line(tiny_recipe, tmp_path):
    """Each node's output directory is its own (a relative path from two working directories, as on node-local
    disks): every node stops with one line before anything is written there."""
    tiny_recipe["output_dir"] = "run"
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(tiny_recipe))
    cwds = (tmp_path / "node0", tmp_path / "node1")
    for cwd in cwds:
        cwd.mkdir()
    finished = [_finish(node, timeout=600) for node in _two_nodes(tmp_path / "recipe.yaml", tmp_path, cwds=cwds)]
    assert all(code != 0 for code, _ in finished)
    errors = [err.count("error: output_dir run is not shared: process 1 does not see") for _, err in finished]
    assert errors == [1, 0]  # one line, from the main process
    assert not list((tmp_path / "node0" / "run").glob("stages/*"))


BUILD_A_RUNG = """
from w2s_align.distributed import state
from w2s_align.models import resolve_model_path

state()  # the launch's process group, as a run makes it before any model
print(resolve_model_path("w2s-align/tiny-gpt2-xs"))
"""


@pytest.mark.slow
@requires_launcher
def test_the_offline_lm_ladder_is_the_one_process_ladder_whatever_the_launch(tmp_path):
    import torch
    from safetensors.torch import load_file

    script = tmp_path / "build_a_rung.py"
    script.write_text(BUILD_A_RUNG)
    two = _launch([str(script)], tmp_path / "two.audit", 2, tmp_path, W2S_ALIGN_CACHE=str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr[-3000:]
    env = {**_launch_env(tmp_path / "one.audit"), "W2S_ALIGN_CACHE": str(tmp_path / "one")}
    one = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    (built_by_two,), (built_by_one,) = (
        list((tmp_path / name / "lm_ladder").glob("tiny-gpt2-xs-*/model.safetensors")) for name in ("two", "one")
    )
    weights, expected = load_file(built_by_two), load_file(built_by_one)
    assert weights.keys() == expected.keys()
    assert all(torch.equal(weights[key], expected[key]) for key in expected)  # bit for bit


def test_a_model_loaded_as_zero3_loads_it_is_saved_with_its_own_weight_names(tmp_path):
    """transformers' ZeRO-3 loading records every conversion of the model's class, BERT's legacy `LayerNorm.gamma` ->
    `weight` renaming too, and saving reverts what is recorded (a MiniLM saved under ZeRO-3 held `gamma`/`beta`; seen
    on 2 CPU processes with accelerate_configs/deepspeed_zero3.yaml). The trainers keep the conversions used."""
    from safetensors import safe_open
    from transformers import BertConfig, BertForSequenceClassification
    from transformers.conversion_mapping import get_model_conversion_mapping

    from w2s_align.distributed import keep_used_conversions

    config = BertConfig(
        vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    saved = {}
    for kept in (False, True):
        model = BertForSequenceClassification(config)
        model._weight_conversions = get_model_conversion_mapping(model, add_legacy=True)  # as the ZeRO-3 path does
        if kept:
            keep_used_conversions(model)
        model.save_pretrained(tmp_path / str(kept))
        with safe_open(str(tmp_path / str(kept) / "model.safetensors"), "pt") as handle:
            saved[kept] = [key for key in handle.keys() if "LayerNorm" in key]
    assert any(key.endswith(".gamma") for key in saved[False])  # the defect this guards against
    assert saved[True] and all(key.endswith((".weight", ".bias")) for key in saved[True])


@pytest.mark.slow
@requires_launcher
def test_a_two_node_run_completes_with_the_one_process_results(half_batch_recipe, tmp_path):
    """Two launches of one process each as the two machines of a job over loopback, each writing where the other
    reads (one output directory): both end with 0 and the margins of one process with the same global batch."""
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({**half_batch_recipe, "output_dir": str(tmp_path / "two")}))
    nodes = _two_nodes(tmp_path / "recipe.yaml", tmp_path)
    ended = [_finish(node, timeout=600) for node in nodes]
    assert [code for code, _ in ended] == [0, 0], "\n".join(err[-2000:] for _, err in ended)
    _assert_whole_models(tmp_path / "two")
    _assert_margins_of_one_process(half_batch_recipe, tmp_path)


@pytest.mark.slow
@requires_launcher
def test_nodes_without_a_shared_ladder_cache_are_refused_with_one_line(half_batch_dpo_recipe, tmp_path):
    """The offline LM ladder's cache (`W2S_ALIGN_CACHE`) on node-local disks (a relative path from two working
    directories): every node stops with one line, before a rung is built that one node would lack."""
    half_batch_dpo_recipe["ladder"][0]["model"] = "w2s-align/tiny-gpt2-xs"
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(half_batch_dpo_recipe))  # one output directory, shared
    cwds = (tmp_path / "node0", tmp_path / "node1")
    for cwd in cwds:
        cwd.mkdir()
    nodes = _two_nodes(tmp_path / "recipe.yaml", tmp_path, cwds=cwds, W2S_ALIGN_CACHE="cache")
    finished = [_finish(node, timeout=600) for node in nodes]
    assert all(code != 0 for code, _ in finished)
    refused = "error: the offline LM ladder's cache (W2S_ALIGN_CACHE) cache/lm_ladder is not shared: process 1"
    assert [err.count(refused) for _, err in finished] == [1, 0], finished[0][1][-3000:]  # one line, from process 0
    assert not list((tmp_path / "node0" / "cache" / "lm_ladder").glob("tiny-gpt2-xs-*"))
