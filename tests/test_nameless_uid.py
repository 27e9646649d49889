"""The model services' environment (compose.yaml) on the host, for a uid without a passwd entry.

Compose runs the train and infer images as the launcher's uid, which the images do not know.
Here the same happens on the host: `setpriv` switches to uid 12345, which has no passwd entry
either, and this venv's torch looks up its caches as vLLM's compile and Liger's kernels do.
The uid also gets CAP_DAC_READ_SEARCH, only so that it may reach this venv's interpreter
(under /root); who it is stays unchanged. Needs root and setpriv; the docker tier runs the
services themselves as such a uid, the images tier the real images.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from helpers import CACHE_LOOKUP, ROOT

pytestmark = pytest.mark.integration

UID = 12345


def model_environment(data: Path) -> dict[str, str]:
    """The train/infer services' environment from compose.yaml, /data mapped to `data`."""
    service = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["train"]
    return {k: str(v).replace("/data", str(data)) for k, v in service["environment"].items()}


def as_nameless_uid(env: dict[str, str], cwd: Path) -> list[str]:
    done = subprocess.run(
        ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups",
         "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
         sys.executable, "-c", CACHE_LOOKUP],
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), **env},
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(os.getuid() != 0 or shutil.which("setpriv") is None, reason="needs root")
def test_a_uid_without_a_passwd_entry_has_a_name_and_caches_on_the_data_volume():
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        data.chmod(0o777)
        env = model_environment(data)
        user, inductor, triton = as_nameless_uid(env, data)
        assert user == "arcjobs"
        assert inductor == str(data / "cache" / "torchinductor")
        assert triton == str(data / "cache" / "triton")
        assert (data / "cache" / "torchinductor").stat().st_uid == UID

        # Without the names: getpass raises, as anything asking who it runs as does (torch
        # >= 2.13's inductor falls back to uid_<n> itself; torch < 2.13 raised there too).
        bare = {k: v for k, v in env.items() if k not in ("USER", "LOGNAME")}
        user, _, _ = as_nameless_uid(bare, data)
        assert user == f"KeyError: 'getpwuid(): uid not found: {UID}'"
