"""The vLLM engine's data parallelism, against a fake `vllm` package that records the calls,
and its refusals, which need no vLLM at all.

Real vLLM runs here as PyPI's CPU build, in the vllm tier (tests/real_vllm: seeds, samples per
prompt, prefix caching, LoRA ids and ranks, the infer step's output, train→sample parity). A
fake is left only for what a CPU cannot do: one engine per GPU group over several GPUs. The
stand-in package named `vllm` goes on the import path: `LLM` records its constructor arguments
and every `generate` call, and its engine processes are real subprocesses importing it.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from arcjobs.errors import UserError
from arcjobs.inference import engine_vllm
from arcjobs.inference.types import PromptRequest, Sampling

pytestmark = pytest.mark.unit

FAKE_VLLM = '''
"""Stand-in for vLLM: records calls in LLM.instances and in the file $FAKE_VLLM_LOG."""
import json
import os
from types import SimpleNamespace


def _log(event):
    path = os.environ.get("FAKE_VLLM_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(event) + "\\n")


class SamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.n = kwargs.get("n", 1)


def TokensPrompt(**kwargs):
    return dict(kwargs)


class LLM:
    instances = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.calls = []
        LLM.instances.append(self)

    def generate(self, prompts, sampling_params, *, use_tqdm=True, lora_request=None):
        self.calls.append((prompts, sampling_params, lora_request))
        _log({
            "devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "first_ids": [p["prompt_token_ids"][0] for p in prompts],
            "n": [s.n for s in sampling_params],
            "lora": None if lora_request is None else lora_request.lora_int_id,
            "engine_seed": self.kwargs.get("seed"),
            "max_model_len": self.kwargs.get("max_model_len"),
        })
        outputs = []
        for p, s in zip(prompts, sampling_params):
            first = p["prompt_token_ids"][0]
            samples = [
                SimpleNamespace(
                    index=i,
                    text=f"```python\\n# {first}.{i}\\n```",
                    token_ids=list(range(i + 1)),
                    finish_reason="stop",
                )
                for i in range(s.n)
            ]
            outputs.append(SimpleNamespace(outputs=samples[::-1]))  # any order
        return outputs
'''

FAKE_LORA = """
from dataclasses import dataclass


@dataclass
class LoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str = ""
"""


FAKE_PLATFORMS = """
from types import SimpleNamespace

current_platform = SimpleNamespace(is_cpu=lambda: False)  # the fake stands for GPU builds
"""


@pytest.fixture
def fake_vllm(tmp_path, monkeypatch):
    """The fake package on sys.path and $PYTHONPATH (for engine subprocesses); its `LLM` class."""
    root = tmp_path / "fake"
    (root / "vllm" / "lora").mkdir(parents=True)
    (root / "vllm" / "__init__.py").write_text(textwrap.dedent(FAKE_VLLM))
    (root / "vllm" / "lora" / "__init__.py").write_text("")
    (root / "vllm" / "lora" / "request.py").write_text(textwrap.dedent(FAKE_LORA))
    (root / "vllm" / "platforms.py").write_text(FAKE_PLATFORMS)
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", str(root))
    monkeypatch.setenv("FAKE_VLLM_LOG", str(tmp_path / "calls.jsonl"))
    import vllm

    yield vllm.LLM
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        del sys.modules[name]


def _requests(count: int) -> list[PromptRequest]:
    return [
        PromptRequest(
            task_id=f"t{i // 2}",
            prompt_index=i % 2,
            test_index=0,
            augmentation=None,
            shuffle_seed=None,
            seed=1000 + i,
            token_ids=(100 + i, 7, 8, 9)[: 2 + i % 3],
        )
        for i in range(count)
    ]


SAMPLING = Sampling(
    samples_per_prompt=3,
    temperature=0.8,
    top_p=0.95,
    max_new_tokens=64,
    seed=5,
    stop_token_ids=(9,),
)
OPTIONS = engine_vllm.VllmOptions(
    gpu_memory_utilization=0.8, max_model_len=4096, tensor_parallel_size=1, seed=5
)


def _adapter(path: Path, **config) -> Path:
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", **config}))
    return path


def test_lora_rank_is_the_adapters_largest_rounded_up_to_one_vllm_accepts(tmp_path):
    assert engine_vllm.adapter_rank(_adapter(tmp_path / "a", r=4)) == 8
    pattern = {"model.layers.0.mlp.down_proj": 40}
    assert engine_vllm.adapter_rank(_adapter(tmp_path / "b", r=16, rank_pattern=pattern)) == 64


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"r": 8, "use_dora": True}, "use_dora"),
        ({"r": 8, "modules_to_save": ["lm_head"]}, "modules_to_save"),
        ({"r": 1024}, "r"),
    ],
)
def test_adapters_vllm_cannot_serve_are_refused_naming_the_key(tmp_path, config, key):
    adapter = _adapter(tmp_path / "adapter", **config)
    with pytest.raises(UserError) as err:
        engine_vllm.adapter_rank(adapter)
    assert str(err.value).startswith(f"{adapter / 'adapter_config.json'}: {key}:")


def test_gpu_groups_follow_visible_devices_and_tensor_parallel_size(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3,5,7")
    assert engine_vllm.gpu_groups(1, 1) == ["2", "3", "5", "7"]
    assert engine_vllm.gpu_groups(1, 2) == ["2,3", "5,7"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert engine_vllm.gpu_groups(3, 1) == ["0", "1", "2"]


def test_data_parallel_runs_one_engine_process_per_gpu_group_over_a_shard(fake_vllm, tmp_path):
    """Real subprocesses (`python -m arcjobs.inference.engine_vllm`), each importing the fake."""
    requests = _requests(7)
    adapter = _adapter(tmp_path / "adapter", r=8)
    done = engine_vllm.run_data_parallel(
        tmp_path / "model", str(adapter), requests, SAMPLING, OPTIONS, ["0", "1,2"], tmp_path / "w"
    )
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert sorted(c["devices"] for c in calls) == ["0", "1,2"], "one engine per GPU group"
    assert sorted(c["engine_seed"] for c in calls) == [5, 6], "engine g is seeded seed + g"
    firsts = [i for c in calls for i in c["first_ids"]]
    assert sorted(firsts) == sorted(r.token_ids[0] for r in requests), "each prompt exactly once"
    assert all(n == 3 for c in calls for n in c["n"])
    assert len({c["lora"] for c in calls}) == 1 and calls[0]["lora"] is not None
    for request, samples in zip(requests, done.results, strict=True):
        assert samples[0].text == f"```python\n# {request.token_ids[0]}.0\n```"
