"""GPU check of w2s_align (issue 25, part 3): bf16 step times with MFU, labeling, DPO, ZeRO-3, the DPO quickstart.

    cd benchmarks && bash gpu_check.sh           # the device machine: installs the carried wheels, then runs this
    cd benchmarks && python gpu_check.py         # a CUDA GPU with the stack: 375 s on an H200
    cd benchmarks && python gpu_check.py --tiny  # CPU smoke test, tiny models and 2 timed steps: about 2 min

Sections, each independent (one that fails records its error, the others still run), in this order:

- `env`: versions, the GPU, and its bf16 matrix rate measured here (8192^3 products, 3 warm-ups, 10 timed).
- `reward`: W2SRewardTrainer (`xent`, `logconf`) against TRL's RewardTrainer, step time in bf16 on GPT-2 small
  (124M) and medium (355M) shapes built from `GPT2Config` (random init, no hub), 32 pairs x 512 tokens per step,
  same starting weights and the same random-token pairs for every contender, 5 warmup + 20 timed steps, 2 repeats
  with the order rotated (`_common.compare_step_times`, `bench_trainer_step.StepTimer`). MFU: model FLOPs per step
  (forward + backward of both sequences of every pair: 6 x non-embedding parameters x tokens, plus the attention
  term 12 x layers x 512 x width x tokens) over the step time, against 790 TFLOP/s (the bf16 matrix rate measured
  on this workplace's H200s, KINDS.md), 989 (the datasheet's dense bf16) and this run's own measured matrix rate.
  Also 6 x all parameters x tokens (the plain formula, embeddings counted, which overstates the work).
- `labeling`: `WeakLabeler` (length-sorted batches under inference mode) against `Trainer.predict` of a TRL
  RewardTrainer, the GPT-2 small reward model on 2,048 real single-turn HH-RLHF test pairs (tokenized by the offline
  LM ladder's tokenizer, up to 512 tokens), 32 pairs per forward pass, both warmed up first, as bench_labeling.py.
- `dpo`: W2SDPOTrainer (`xent`, `logconf`) against TRL's DPOTrainer, GPT-2 small causal LM (random init), bf16,
  16 pairs x 512 tokens (255 prompt + 256 completion + eos), the same explicit reference model, reference
  log-probs on the fly; MFU with 8 x (non-embedding + LM-head) parameters x tokens (policy forward and backward,
  reference forward) plus the attention term.
- `options`: the speed options a TRL user reaches for (`--options`: `compile`, TRL's `torch_compile=True`; `liger`,
  `use_liger_kernel=True`, skipped where liger-kernel is not installed), each on TRL's trainer and on the W2S trainer
  (`xent` with hard labels, whose loss is TRL's), for the reward step (GPT-2 small shape, the `reward` batch) and the
  DPO step (the `dpo` batch): step times with ratios against plain TRL, every step's loss, and the largest loss
  difference against TRL under the same option and against plain TRL. `--tiny` proves on a CPU that each runs and
  gives TRL's losses.
- `quickstart`: `w2s-align run recipes/quickstart_dpo.yaml` end to end from an empty ladder cache (builds and
  pretrains the offline LM ladder, SFT, DPO ceilings, labels, students, conflicts, report), wall time (time-boxed).
- `zero3`: W2SRewardTrainer and TRL's RewardTrainer under `accelerate launch --config_file
  accelerate_configs/deepspeed_zero3.yaml --num_processes 1` (GPT-2 small shape, the `reward` batch), step time
  against the plain runs of `reward` (time-boxed subprocess; skipped when deepspeed does not import).

Prints one JSON object; with `OUT` set (or `--json PATH`) it also writes it after every section, so a run stopped
early keeps what it measured. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
os.environ.setdefault("W2S_ALIGN_CACHE", tempfile.mkdtemp(prefix="gpu-check-cache-"))
TRAINER_DIR = tempfile.mkdtemp(prefix="gpu-check-trainers-")  # output_dir of every trainer (nothing is saved)

import torch  # noqa: E402
from _common import compare_step_times, device_name, dpo_trainer, quiet, reward_trainer, training_kwargs  # noqa: E402
from bench_trainer_step import StepTimer  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

EOS = "<|endoftext|>"
GPT2_VOCAB = 50257
PEAK_MEASURED_HERE = 790e12  # bf16 matrix rate of this workplace's H200s on random data (KINDS.md)
PEAK_DATASHEET = 989.4e12  # H100/H200 SXM dense bf16, the vendor's datasheet
SHAPES = {
    "gpt2-124M": {"n_layer": 12, "n_embd": 768, "n_head": 12},
    "gpt2-medium-355M": {"n_layer": 24, "n_embd": 1024, "n_head": 16},
}
TINY_SHAPES = {"tiny-2x64": {"n_layer": 2, "n_embd": 64, "n_head": 4}}
START = time.perf_counter()


def log(message: str) -> None:
    print(f"[gpu_check {time.perf_counter() - START:7.1f}s] {message}", file=sys.stderr, flush=True)


def cuda() -> bool:
    return torch.cuda.is_available()


def sync() -> None:
    if cuda():
        torch.cuda.synchronize()


def free_memory() -> None:
    gc.collect()
    if cuda():
        torch.cuda.empty_cache()


def word_tokenizer(vocab_size: int):
    """A word-level tokenizer whose words `w0`..`w{V-2}` are token ids 0..V-2 and eos is V-1 (GPT-2's 50256), so a
    text of n random words is exactly n tokens: fixed-length pairs for the trainers that tokenize text (DPO)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(vocab_size - 1)}
    vocab[EOS] = vocab_size - 1
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=EOS))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, pad_token=EOS, unk_token=EOS)


def gpt2_config(shape: dict, vocab_size: int, positions: int, **kwargs):
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=vocab_size,
        n_positions=positions,
        bos_token_id=vocab_size - 1,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        **shape,
        **kwargs,
    )


def parameter_counts(model, config) -> dict:
    total = sum(p.numel() for p in model.parameters())
    embedding = config.vocab_size * config.n_embd + config.n_positions * config.n_embd
    return {"total": total, "embedding": embedding, "non_embedding": total - embedding}


def peaks(measured: float | None) -> dict:
    out = {"kinds_md_790": PEAK_MEASURED_HERE, "datasheet_989": PEAK_DATASHEET}
    if measured:
        out["this_run_matmul"] = measured
    return out


def mfu(flops_per_step: float, seconds: float, measured: float | None) -> dict:
    achieved = flops_per_step / seconds
    return {
        "achieved_tflops": achieved / 1e12,
        **{f"mfu_vs_{name}": achieved / peak for name, peak in peaks(measured).items()},
    }


class Report:
    """The result, written out after every section (to $OUT/gpu_check.json and/or --json)."""

    def __init__(self, paths: list[Path]):
        self.data: dict = {"sections": {}}
        self.paths = paths

    def section(self, name: str, function, *args, **kwargs):
        log(f"section {name} ...")
        started = time.perf_counter()
        try:
            result = function(*args, **kwargs)
            status = "failed" if result and result.get("error") else "ok"
        except Exception as error:  # noqa: BLE001 - one failing section must not stop the others
            result = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-6000:]}
            status = "failed"
            log(f"section {name} FAILED: {type(error).__name__}: {error}")
        result = {"status": status, "section_wall_s": round(time.perf_counter() - started, 2), **(result or {})}
        self.data["sections"][name] = result
        self.save()
        log(f"section {name} {status} in {result['section_wall_s']} s")
        free_memory()
        return result

    def skip(self, name: str, why: str) -> None:
        self.data["sections"][name] = {"status": "skipped", "why": why}
        self.save()
        log(f"section {name} skipped: {why}")

    def save(self) -> None:
        self.data["total_wall_s"] = round(time.perf_counter() - START, 2)
        for path in self.paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=2, default=str))
            os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------------------- env
def section_env() -> dict:
    import accelerate
    import datasets
    import transformers
    import trl

    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "accelerate": accelerate.__version__,
        "datasets": datasets.__version__,
        "device": device_name(),
        "cpu_threads": torch.get_num_threads(),
    }
    for name in ("peft", "evaluate", "deepspeed", "pyarrow", "tokenizers", "huggingface_hub", "numpy"):
        try:
            from importlib.metadata import version

            out[name] = version(name)
        except Exception as error:  # noqa: BLE001
            out[name] = f"not installed ({type(error).__name__})"
    if cuda():
        props = torch.cuda.get_device_properties(0)
        out.update(
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count,
            capability=f"{props.major}.{props.minor}",
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
        try:
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            out["nvidia_smi"] = smi.stdout.strip()
        except Exception as error:  # noqa: BLE001
            out["nvidia_smi"] = f"failed: {error}"
        n = 8192
        a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        for _ in range(3):
            a @ b
        sync()
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        sync()
        out["measured_bf16_matmul_tflops"] = 2 * n**3 * 10 / (time.perf_counter() - start) / 1e12
        del a, b
    return out


# -------------------------------------------------------------------------------------------------------- reward
def random_pairs(n: int, length: int, vocab_size: int, seed: int = 0):
    """`n` pre-tokenized pairs of `length` random tokens each (no eos/pad id, so every row is exactly `length`)."""
    from datasets import Dataset

    rng = random.Random(seed)
    rows = {side: [[rng.randrange(vocab_size - 1) for _ in range(length)] for _ in range(n)] for side in ("c", "r")}
    return Dataset.from_dict({"chosen_ids": rows["c"], "rejected_ids": rows["r"], "soft_label": [0.7] * n})


def reward_contender(name: str, common: dict, base, data, tokenizer, bf16: bool, timer):
    """A trainer for contender `name` (trl, or a W2S student loss) on a copy of `base`, timed by `timer`."""
    return reward_trainer(name, common, base, data, tokenizer, TRAINER_DIR, callbacks=[timer], bf16=bf16)


def run_contender(make_trainer, memory: dict, name: str, after_train=None) -> list[float]:
    """Train one contender, return its step times; record its peak GPU memory; free it."""
    timer = StepTimer()
    if cuda():
        torch.cuda.reset_peak_memory_stats()
    trainer = make_trainer(timer)
    trainer.train()
    if after_train is not None:
        after_train(trainer)
    if cuda():
        memory.setdefault(name, []).append(round(torch.cuda.max_memory_allocated() / 2**30, 2))
    del trainer
    free_memory()
    return timer.times


def section_reward(shape_name: str, shape: dict, args, measured: float | None) -> dict:
    from transformers import GPT2ForSequenceClassification

    vocab = args.vocab
    tokenizer = word_tokenizer(vocab)
    torch.manual_seed(0)
    config = gpt2_config(shape, vocab, max(1024, args.seq), num_labels=1)
    base = GPT2ForSequenceClassification(config)
    counts = parameter_counts(base, config)
    data = random_pairs((args.steps + args.warmup) * args.batch, args.seq, vocab)
    memory: dict = {}

    def run_one(name: str, common: dict) -> list[float]:
        log(f"  reward {shape_name}: {name}")
        make = lambda timer: reward_contender(name, common, base, data, tokenizer, args.bf16, timer)  # noqa: E731
        return run_contender(make, memory, name)

    result = compare_step_times(run_one, args.steps, args.warmup, args.repeats, args.batch, max_length=None)
    tokens = 2 * args.batch * args.seq
    flops = tokens * (6 * counts["non_embedding"] + 12 * shape["n_layer"] * args.seq * shape["n_embd"])
    flops_all = 6 * counts["total"] * tokens
    return {
        "shape": shape,
        "vocab_size": vocab,
        "parameters": counts,
        "attn_implementation": getattr(base.config, "_attn_implementation", None),
        "batch_pairs": args.batch,
        "seq_len": args.seq,
        "tokens_per_step": tokens,
        "bf16": args.bf16,
        "steps_timed": args.steps,
        "warmup": args.warmup,
        "repeats": args.repeats,
        **result,
        "peak_gpu_memory_gib": memory,
        "model_flops_per_step": flops,
        "mfu_basis": "6 x non-embedding params x tokens + 12 x layers x seq x width x tokens (fwd+bwd, both sides)",
        "mfu": {name: mfu(flops, s, measured) for name, s in result["seconds_per_step"].items()},
        "flops_6NT_all_params_per_step": flops_all,
        "mfu_6NT_all_params": {name: mfu(flops_all, s, measured) for name, s in result["seconds_per_step"].items()},
    }


# ------------------------------------------------------------------------------------------------------ labeling
def labeling_pairs(n: int):
    """Real single-turn HH-RLHF harmless test pairs (../shared or the copy carried in .whl/), else synthetic."""
    from _common import real_or_synthetic_pairs

    from w2s_align.data import load_splits
    from w2s_align.recipe import DataConfig

    for path in (ROOT.parent / "shared" / "data" / "hh-single-turn", ROOT / ".whl" / "hh-single-turn"):
        if (path / "harmless_test.jsonl.gz").is_file():
            config = DataConfig(source="hh_single_turn", path=str(path), gt_size=1, w2s_size=1, test_size=n, seed=0)
            return load_splits(config)["test"], f"hh-single-turn test ({n} pairs, {path})"
    return real_or_synthetic_pairs(n)


def section_labeling(args) -> dict:
    import numpy as np
    from transformers import GPT2ForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from w2s_align.labeling import WeakLabeler
    from w2s_align.lm_ladder import build_tokenizer
    from w2s_align.models import load_tokenizer, tokenize_pairs

    tokenizer = load_tokenizer(str(build_tokenizer()))  # as the pipeline loads the ladder's tokenizer
    shape = TINY_SHAPES["tiny-2x64"] if args.tiny else SHAPES["gpt2-124M"]
    torch.manual_seed(0)
    config = gpt2_config(shape, max(args.vocab, len(tokenizer)), 1024, num_labels=1)
    config.pad_token_id = tokenizer.pad_token_id
    model = GPT2ForSequenceClassification(config).to("cuda" if cuda() else "cpu").eval()
    pairs, data_name = labeling_pairs(args.label_pairs)
    tokenized = tokenize_pairs(pairs, tokenizer, args.label_max_length)
    lengths = [len(ids) for ids in tokenized["chosen_ids"]] + [len(ids) for ids in tokenized["rejected_ids"]]
    predict_data = tokenized.select_columns(["chosen_ids", "rejected_ids"])
    trainer = RewardTrainer(
        model=model,
        args=RewardConfig(
            output_dir=TRAINER_DIR,
            per_device_eval_batch_size=args.label_batch,
            report_to=[],
            bf16=args.bf16,
            gradient_checkpointing=False,
            disable_tqdm=True,
            max_length=None,
        ),
        train_dataset=predict_data,  # required by RewardTrainer, never trained on here
        processing_class=tokenizer,
    )
    labeler = WeakLabeler(model, tokenizer, "gpu-check", batch_size=2 * args.label_batch, max_length=512)
    warm = 2 * args.label_batch
    trainer.predict(predict_data.select(range(warm)))  # warm-ups: CUDA kernels, autocast caches
    labeler.label(tokenized.select(range(warm)))
    sync()
    start = time.perf_counter()
    output = trainer.predict(predict_data)
    sync()
    predict_seconds = time.perf_counter() - start
    start = time.perf_counter()
    labels = labeler.label(tokenized)
    sync()
    label_seconds = time.perf_counter() - start
    logits = np.asarray(output.predictions, dtype=np.float32).reshape(-1)  # per batch: chosen rows, then rejected
    chosen, rejected = [], []
    for index in range(0, len(logits), 2 * args.label_batch):
        block = logits[index : index + 2 * args.label_batch]
        chosen.extend(block[: len(block) // 2])
        rejected.extend(block[len(block) // 2 :])
    diff = max(
        np.abs(np.asarray(chosen) - np.asarray(labels["reward_chosen"])).max(),
        np.abs(np.asarray(rejected) - np.asarray(labels["reward_rejected"])).max(),
    )
    return {
        "model": f"GPT2ForSequenceClassification {shape}, vocab {config.vocab_size}, random init",
        "data": data_name,
        "tokenizer": "offline LM ladder tokenizer (w2s_align.lm_ladder.build_tokenizer)",
        "pairs": args.label_pairs,
        "batch_pairs": args.label_batch,
        "sequence_tokens": {"mean": statistics.mean(lengths), "max": max(lengths), "min": min(lengths)},
        "bf16": args.bf16,
        "trainer_predict_s": predict_seconds,
        "weak_labeler_s": label_seconds,
        "trainer_predict_pairs_per_s": args.label_pairs / predict_seconds,
        "weak_labeler_pairs_per_s": args.label_pairs / label_seconds,
        "speedup": predict_seconds / label_seconds,
        "max_abs_reward_difference": float(diff),
    }


# ----------------------------------------------------------------------------------------------------------- dpo
def dpo_shape(args) -> dict:
    return TINY_SHAPES["tiny-2x64"] if args.tiny else SHAPES["gpt2-124M"]


def dpo_setup(args) -> tuple:
    """The DPO policy (GPT-2 small shape, random init), its tokenizer and `(steps + warmup) x dpo_batch` pairs of
    `seq // 2 - 1` prompt and `seq // 2` completion words (the trainers append eos: `seq` tokens a sequence)."""
    from datasets import Dataset
    from transformers import GPT2LMHeadModel

    vocab = args.vocab
    prompt_len, completion_len = args.seq // 2 - 1, args.seq // 2
    tokenizer = word_tokenizer(vocab)
    torch.manual_seed(0)
    base = GPT2LMHeadModel(gpt2_config(dpo_shape(args), vocab, max(1024, args.seq)))
    rng = random.Random(0)
    words = lambda k: " ".join(f"w{rng.randrange(vocab - 1)}" for _ in range(k))  # noqa: E731
    n = (args.steps + args.warmup) * args.dpo_batch
    data = Dataset.from_dict(
        {
            "prompt": [words(prompt_len) for _ in range(n)],
            "chosen": [" " + words(completion_len) for _ in range(n)],
            "rejected": [" " + words(completion_len) for _ in range(n)],
            "soft_label": [0.7] * n,
        }
    )
    return base, tokenizer, data


def section_dpo(args, measured: float | None) -> dict:
    shape = dpo_shape(args)
    vocab, batch = args.vocab, args.dpo_batch
    prompt_len, completion_len = args.seq // 2 - 1, args.seq // 2  # + eos appended by the trainers: seq tokens
    base, tokenizer, data = dpo_setup(args)
    counts = parameter_counts(base, base.config)
    memory: dict = {}
    tokens_seen: dict = {}

    def run_one(name: str, common: dict) -> list[float]:
        log(f"  dpo: {name}")

        def make(timer):
            trainer = dpo_trainer(name, common, base, data, tokenizer, TRAINER_DIR, callbacks=[timer], bf16=args.bf16)
            original_train = trainer.train

            def train():
                out = original_train()
                total = getattr(trainer, "_total_train_tokens", None)
                if total:
                    tokens_seen[name] = total / max(1, trainer.state.global_step)
                return out

            trainer.train = train
            return trainer

        return run_contender(make, memory, name)

    result = compare_step_times(run_one, args.steps, args.warmup, args.repeats, batch, max_length=args.seq, beta=0.1)
    tokens = 2 * batch * args.seq
    lm_head = vocab * shape["n_embd"]
    # Policy forward + backward (6) and reference forward (2) over the matmul parameters (blocks + LM head).
    flops = tokens * (8 * (counts["non_embedding"] + lm_head) + 16 * shape["n_layer"] * args.seq * shape["n_embd"])
    return {
        "shape": shape,
        "vocab_size": vocab,
        "parameters": counts,
        "batch_pairs": batch,
        "seq_len": args.seq,
        "prompt_tokens": prompt_len,
        "completion_tokens": completion_len + 1,
        "tokens_per_step": tokens,
        "tokens_per_step_seen_by_trainer": tokens_seen,
        "bf16": args.bf16,
        "steps_timed": args.steps,
        "warmup": args.warmup,
        "repeats": args.repeats,
        **result,
        "peak_gpu_memory_gib": memory,
        "model_flops_per_step": flops,
        "mfu_basis": "8 x (non-embedding + LM-head) params x tokens + 16 x layers x seq x width x tokens "
        "(policy fwd+bwd, reference fwd)",
        "mfu": {name: mfu(flops, s, measured) for name, s in result["seconds_per_step"].items()},
    }


# ------------------------------------------------------------------------------------------------------- options
# The speed options a TRL user reaches for, as TRL's own config fields, each measured on TRL's trainer and on the W2S
# trainer with hard labels (where the W2S loss is TRL's, so the losses must agree). Padding-free packing is not among
# them: the step shapes here have no padding to remove (every sequence is `--seq` tokens), and TRL 1.16 disables DPO's.
OPTIONS = {"plain": {}, "compile": {"torch_compile": True}, "liger": {"use_liger_kernel": True}}


def option_problem(option: str) -> str | None:
    if option == "liger" and importlib.util.find_spec("liger_kernel") is None:
        return "liger-kernel is not installed"
    return None


class LossRecorder(TrainerCallback):
    """The training loss of every step (the configs log every step in this section)."""

    def __init__(self):
        self.losses: list[float] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))


def section_options(task: str, args) -> dict:
    """Step time and per-step loss of TRL's trainer and the W2S trainer (`xent`, hard labels) under each option of
    `OPTIONS`, all from the same weights on the same batches; ratios against plain TRL, the largest loss difference
    against TRL under the same option and against plain TRL."""
    import statistics

    if task == "reward":
        from transformers import GPT2ForSequenceClassification

        shape = TINY_SHAPES["tiny-2x64"] if args.tiny else SHAPES["gpt2-124M"]
        tokenizer = word_tokenizer(args.vocab)
        torch.manual_seed(0)
        base = GPT2ForSequenceClassification(gpt2_config(shape, args.vocab, max(1024, args.seq), num_labels=1))
        data = random_pairs((args.steps + args.warmup) * args.batch, args.seq, args.vocab)
        batch, make, common = args.batch, reward_trainer, {}
    else:
        base, tokenizer, data = dpo_setup(args)
        batch, make, common = args.dpo_batch, dpo_trainer, {"max_length": args.seq, "beta": 0.1}
    data = data.map(lambda row: {"soft_label": 1.0})  # hard labels: the W2S loss is TRL's
    kwargs = {**training_kwargs(batch, args.steps + args.warmup, **common), "logging_steps": 1}
    options = ["plain", *(option for option in args.options.split(",") if option != "plain")]  # plain: the baseline
    skipped = {option: why for option in options if (why := option_problem(option))}
    contenders = [(trainer, option) for option in options if option not in skipped for trainer in ("trl", "xent")]
    times: dict = {}
    losses: dict = {}
    memory: dict = {}
    for repeat in range(args.repeats):
        shift = repeat % len(contenders)
        for trainer, option in contenders[shift:] + contenders[:shift]:
            name = f"{trainer}+{option}"
            log(f"  options {task}: {name}")
            recorder = LossRecorder()

            def build(timer, trainer=trainer, option=option, recorder=recorder):
                return make(
                    trainer, kwargs, base, data, tokenizer, TRAINER_DIR, callbacks=[timer, recorder],
                    bf16=args.bf16, **OPTIONS[option],
                )  # fmt: skip

            step_times = run_contender(build, memory, name)
            times.setdefault(name, []).append(statistics.median(step_times[args.warmup :]))
            losses[name] = recorder.losses
    seconds = {name: statistics.median(values) for name, values in times.items()}
    plain = "trl+plain"
    difference = lambda a, b: max((abs(x - y) for x, y in zip(losses[a], losses[b])), default=None)  # noqa: E731
    return {
        "task": task,
        "batch_pairs": batch,
        "seq_len": args.seq,
        "bf16": args.bf16,
        "steps_timed": args.steps,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "skipped": skipped,
        "seconds_per_step": seconds,
        "ratio_vs_plain_trl": {name: value / seconds[plain] for name, value in seconds.items()},
        "losses": losses,
        "max_loss_difference_vs_trl_same_option": {
            name: difference(name, "trl+" + name.split("+")[1]) for name in losses if name.startswith("xent")
        },
        "max_loss_difference_vs_plain_trl": {name: difference(name, plain) for name in losses},
        "peak_gpu_memory_gib": memory,
    }


# ---------------------------------------------------------------------------------------------------- quickstart
def timed_run(label: str, command: list[str], env: dict, timeout: float) -> tuple:
    """Run `command` in the repository root, time-boxed: (returncode or "timeout", stdout, stderr, wall seconds)."""
    log(f"  {label}: {' '.join(command[1:])} (timeout {timeout:.0f} s)")
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as error:
        rc = "timeout"
        stdout = error.stdout.decode() if isinstance(error.stdout, bytes) else (error.stdout or "")
        stderr = error.stderr.decode() if isinstance(error.stderr, bytes) else (error.stderr or "")
    return rc, stdout, stderr, time.perf_counter() - start


def section_quickstart(args, timeout: float) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="gpu-check-qs-"))
    cache = args.quickstart_cache or str(workdir / "cache")
    env = {**os.environ, "W2S_ALIGN_CACHE": cache, "PYTHONPATH": pythonpath()}
    command = [sys.executable, "-m", "w2s_align", "run", "recipes/quickstart_dpo.yaml", f"output_dir={workdir}/run"]
    if args.tiny:  # the pipeline on a few pairs: checks the path, not the time
        command += [
            "data.gt_size=24",
            "data.w2s_size=24",
            "data.test_size=24",
            "training.num_train_epochs=1",
            "conflicts.settings=[none]",
            "methods=[xent]",
        ]
    rc, stdout, stderr, wall = timed_run("quickstart", command, env, timeout)
    out = {
        "command": f"W2S_ALIGN_CACHE={args.quickstart_cache or '<empty>'} " + " ".join(["python", *command[1:]]),
        "returncode": rc,
        "wall_s": wall,
        "peak_rss_gib_largest_child": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20,
        "stdout_tail": stdout[-4000:],
        "stderr_tail": stderr[-3000:],
    }
    if rc != 0:
        out["error"] = f"w2s-align run ended with {rc}"
    return out


# --------------------------------------------------------------------------------------------------------- zero3
def section_zero3(args, timeout: float, plain: dict | None) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="gpu-check-z3-"))
    result_file = workdir / "zero3.json"
    # The shipped file, launched from the repository root (it names its DeepSpeed JSON from there).
    config_file = ROOT / "accelerate_configs" / "deepspeed_zero3.yaml"
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(config_file),
        "--num_processes", "1", "--main_process_port", "29531",
        str(BENCH / "gpu_check.py"), "--worker", "zero3", "--result", str(result_file),
    ]  # fmt: skip
    if args.tiny:
        command.append("--tiny")
    env = {**os.environ, "PYTHONPATH": pythonpath()}
    if cuda():
        env["DS_ACCELERATOR"] = "cuda"
    rc, stdout, stderr, wall = timed_run("zero3", command, env, timeout)
    out: dict = {
        "command": "accelerate launch " + " ".join(command[3:]),
        "config": "accelerate_configs/deepspeed_zero3.yaml",
        "returncode": rc,
        "wall_s": wall,
    }
    if result_file.is_file():
        out.update(json.loads(result_file.read_text()))
    if plain and "seconds_per_step" in out:
        out["ratio_vs_plain_same_contender"] = {
            name: seconds / plain[name]
            for name, seconds in out["seconds_per_step"].items()
            if name in plain and seconds
        }
    if rc != 0 or "seconds_per_step" not in out:
        out["error"] = f"launch ended with {rc}"
        out["stdout_tail"] = stdout[-2500:]
        out["stderr_tail"] = stderr[-4000:]
    return out


def worker_zero3(args) -> None:
    """Inside `accelerate launch` with DeepSpeed ZeRO-3: W2S xent, then TRL, on the `reward` section's small rung."""
    from transformers import GPT2ForSequenceClassification

    out: dict = {"seconds_per_step": {}, "errors": {}, "per_step_seconds": {}}
    shape_name, shape = next(iter((TINY_SHAPES if args.tiny else SHAPES).items()))
    tokenizer = word_tokenizer(args.vocab)
    torch.manual_seed(0)
    config = gpt2_config(shape, args.vocab, max(1024, args.seq), num_labels=1)
    base = GPT2ForSequenceClassification(config)
    data = random_pairs((args.steps + args.warmup) * args.batch, args.seq, args.vocab)
    common = training_kwargs(args.batch, args.steps + args.warmup, max_length=None)
    memory: dict = {}
    out.update(shape=shape_name, batch_pairs=args.batch, seq_len=args.seq, bf16=args.bf16)
    try:
        import deepspeed

        out["deepspeed"] = deepspeed.__version__
    except Exception as error:  # noqa: BLE001
        out["deepspeed"] = f"{type(error).__name__}: {error}"
    engines: dict = {}

    def inspect(trainer, name):
        wrapped = getattr(trainer, "model_wrapped", None)
        stage = getattr(wrapped, "zero_optimization_stage", None)
        first = next(trainer.model.parameters())
        engines[name] = {
            "engine": type(wrapped).__name__,
            "zero_stage": stage() if callable(stage) else None,
            "parameters_partitioned": hasattr(first, "ds_id"),
            "optimizer": type(getattr(trainer, "optimizer", None)).__name__,
        }

    out["engines"] = engines
    for name in ("xent", "trl"):
        try:
            make = lambda timer, name=name: reward_contender(name, common, base, data, tokenizer, args.bf16, timer)  # noqa: E731
            times = run_contender(make, memory, name, lambda trainer, name=name: inspect(trainer, name))
            out["seconds_per_step"][name] = statistics.median(times[args.warmup :])
            out["per_step_seconds"][name] = [round(t, 4) for t in times]
        except Exception as error:  # noqa: BLE001
            out["errors"][name] = f"{type(error).__name__}: {error}\n{traceback.format_exc()[-3000:]}"
        Path(args.result).write_text(json.dumps({**out, "peak_gpu_memory_gib": memory}, default=str))
    if "xent" in out["seconds_per_step"] and "trl" in out["seconds_per_step"]:
        out["ratio_xent_vs_trl"] = out["seconds_per_step"]["xent"] / out["seconds_per_step"]["trl"]
    try:
        from accelerate.state import AcceleratorState

        out["distributed_type"] = str(AcceleratorState().distributed_type)
    except Exception as error:  # noqa: BLE001
        out["distributed_type"] = f"unknown ({error})"
    Path(args.result).write_text(json.dumps({**out, "peak_gpu_memory_gib": memory}, default=str))


# ---------------------------------------------------------------------------------------------------------- main
def deepspeed_problem() -> str | None:
    """Why DeepSpeed cannot run here, or None."""
    try:
        import deepspeed  # noqa: F401
    except Exception as error:  # noqa: BLE001
        return f"deepspeed does not import: {type(error).__name__}: {error}"
    return None


def pythonpath() -> str:
    parts = [str(ROOT), str(BENCH), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    return os.pathsep.join(dict.fromkeys(parts))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="CPU smoke test: tiny models, short sequences, 2 steps.")
    parser.add_argument("--budget_s", type=float, default=450.0, help="Skip sections that would not fit in this.")
    parser.add_argument("--json", default=None, help="Also write the result here.")
    parser.add_argument("--sections", default="env,reward,labeling,dpo,options,quickstart,zero3")
    parser.add_argument("--options", default=",".join(OPTIONS), help=f"Among {sorted(OPTIONS)} (section `options`).")
    parser.add_argument("--reward_shapes", default=",".join(SHAPES), help=f"Among {sorted(SHAPES)}.")
    parser.add_argument("--batch", type=int, default=32, help="Pairs per reward step.")
    parser.add_argument("--dpo_batch", type=int, default=16, help="Pairs per DPO step.")
    parser.add_argument("--seq", type=int, default=512, help="Tokens per sequence.")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--label_pairs", type=int, default=2048)
    parser.add_argument("--label_batch", type=int, default=32)
    parser.add_argument("--label_max_length", type=int, default=512)
    parser.add_argument("--quickstart_timeout", type=float, default=240.0)
    parser.add_argument("--zero3_timeout", type=float, default=150.0)
    parser.add_argument("--quickstart_cache", default=None, help="Ladder cache to use (default: a new, empty one).")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.vocab = GPT2_VOCAB
    if args.tiny:
        args.vocab, args.batch, args.dpo_batch, args.seq = 1000, 4, 2, 32
        args.steps, args.warmup, args.repeats = 2, 1, 1
        args.label_pairs, args.label_batch, args.label_max_length = 64, 8, 64
    args.bf16 = cuda() and torch.cuda.is_bf16_supported()
    return args


def main() -> None:
    args = parse_args()
    quiet()
    if args.worker == "zero3":
        worker_zero3(args)
        return
    paths = [Path(args.json)] if args.json else []
    if os.environ.get("OUT"):
        paths.append(Path(os.environ["OUT"]) / "gpu_check.json")
    report = Report(paths)
    report.data["args"] = {k: v for k, v in vars(args).items() if k not in ("worker", "result")}
    report.data["argv"] = sys.argv
    wanted = args.sections.split(",")
    remaining = lambda: args.budget_s - (time.perf_counter() - START)  # noqa: E731
    measured = None
    if "env" in wanted:
        env = report.section("env", section_env)
        measured = (env.get("measured_bf16_matmul_tflops") or 0) * 1e12 or None
        log(json.dumps({k: env.get(k) for k in ("device", "torch", "transformers", "trl", "deepspeed")}))
    plain: dict = {}
    if "reward" in wanted:
        shapes = TINY_SHAPES if args.tiny else {k: SHAPES[k] for k in args.reward_shapes.split(",") if k}
        for index, (name, shape) in enumerate(shapes.items()):
            if index and remaining() < 260:  # the later sections need about this much
                report.skip(f"reward_{name}", f"budget: {remaining():.0f} s left")
                continue
            result = report.section(f"reward_{name}", section_reward, name, shape, args, measured)
            if index == 0 and "seconds_per_step" in result:
                plain = result["seconds_per_step"]
    if "labeling" in wanted:
        report.section("labeling", section_labeling, args)
    if "dpo" in wanted:
        report.section("dpo", section_dpo, args, measured)
    if "options" in wanted:
        for task in ("reward", "dpo"):
            if remaining() < 150:
                report.skip(f"options_{task}", f"budget: {remaining():.0f} s left")
            else:
                report.section(f"options_{task}", section_options, task, args)
    if "quickstart" in wanted:
        reserve = 100 if "zero3" in wanted else 10
        timeout = min(args.quickstart_timeout, remaining() - reserve)
        if timeout < 60:
            report.skip("quickstart", f"budget: {remaining():.0f} s left")
        else:
            report.section("quickstart", section_quickstart, args, timeout)
    if "zero3" in wanted:
        timeout = min(args.zero3_timeout, remaining() - 5)
        why = deepspeed_problem()
        if why:
            report.skip("zero3", why)
        elif timeout < 45:
            report.skip("zero3", f"budget: {remaining():.0f} s left")
        else:
            report.section("zero3", section_zero3, args, timeout, plain)
    report.save()
    print(json.dumps(report.data, indent=2, default=str))


if __name__ == "__main__":
    main()
