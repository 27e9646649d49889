"""Step kind `tiny_model`: build the tiny local Llama model into `out/` (see `arcjobs.models.tiny`).

The demo job and the integration tests start with this step, so the whole search-and-learn
loop runs on a CPU without downloading anything. Its outputs depend only on its parameters
(and the checkout's DSL text), so the step caches like any other.
"""

from __future__ import annotations

from pydantic import Field

from arcjobs.steps.base import StepContext, StepKind, StepParams


class Params(StepParams):
    seed: int = Field(0, description="Seed of the random weights.")
    vocab_size: int = Field(2048, ge=300, description="Upper bound of the BPE vocabulary.")
    hidden_size: int = Field(128, ge=8)
    intermediate_size: int = Field(256, ge=8)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1)
    num_kv_heads: int = Field(2, ge=1)
    max_positions: int = Field(
        8192, ge=128, description="Context length (BARC prompts reach ~8.6k)."
    )
    output_scale: float = Field(
        10.0,
        gt=0,
        description="The output layer's initial scale, relative to the others': wide enough "
        "for an adapter to make the model's choices sharp.",
    )


def run(params: Params, ctx: StepContext) -> None:
    from arcjobs.models.tiny import TinySpec, build_tiny

    build_tiny(ctx.out, TinySpec(**params.model_dump()))


KIND = StepKind(
    name="tiny_model",
    params=Params,
    run=run,
    image="train",
    description="Build a tiny random Llama-architecture model + tokenizer (CPU runs, tests, demo).",
)
