"""The sqlite result cache: hits, what invalidates them, corruption, concurrent writers."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sandbox_helpers import benign, tiny_task

from arcjobs.sandbox import Limits, Program, ResultCache, execute

pytestmark = pytest.mark.unit

SLOW = "import time\ndef transform(g):\n    time.sleep(60)\n"


def run(programs, cache, limits=None):
    results = execute(
        programs, {"tiny": tiny_task()}, limits or Limits(timeout_s=0.5), workers=2, cache=cache
    )
    return sorted(results, key=lambda r: r.index), results


def test_second_run_is_served_from_the_cache_including_timeouts(tmp_path: Path) -> None:
    programs = [
        Program("tiny", 0, benign("a")),
        Program("tiny", 1, SLOW),
        Program("tiny", 2, "def transform(:"),
    ]
    cache = ResultCache(tmp_path / "c.sqlite")
    first, _ = run(programs, cache)
    assert [r.status for r in first] == ["ok", "timeout", "syntax_error"]
    second, run2 = run(programs, cache)
    assert all(r.cached for r in second)
    assert run2.stats["executed"] == 0 and run2.layers is None
    assert [r.record() for r in second] == [r.record() for r in first]


def test_a_program_cannot_write_the_cache_it_is_scored_into(tmp_path: Path) -> None:
    """Adversarial: a program that knows the cache's path tries to open it (and its WAL) for
    writing and to forge a row through sqlite3; every attempt is refused as unsafe, and the
    cache still serves the honest results afterwards."""
    cache = ResultCache(tmp_path / "c.sqlite")
    (honest,), _ = run([Program("tiny", 0, benign("a"))], cache)
    path = str(cache.path)
    attacks = [
        f"open({path!r}, 'r+b').write(b'x')",
        f"open({path + '-wal'!r}, 'ab').write(b'x')",
        f"import sqlite3\nsqlite3.connect({path!r}).execute('DELETE FROM results')",
    ]
    programs = [
        Program(
            "tiny",
            i,
            f"def transform(input_grid):\n    {body.replace(chr(10), chr(10) + '    ')}\n",
        )
        for i, body in enumerate(attacks, start=1)
    ]
    hostile, _ = run(programs, cache)
    assert [r.status for r in hostile] == ["unsafe"] * 3, [r.error for r in hostile]
    (again,), _ = run([Program("tiny", 0, benign("a"))], cache)
    assert again.cached and again.record() == honest.record()


def test_limits_and_source_are_part_of_the_key(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "c.sqlite")
    run([Program("tiny", 0, benign("a"))], cache)
    (again,), _ = run([Program("tiny", 0, benign("a"))], cache, Limits(timeout_s=0.7))
    (edited,), _ = run([Program("tiny", 0, benign("b"))], cache)
    assert not again.cached and not edited.cached


def test_a_key_is_the_hash_of_version_inputs_and_source_apart() -> None:
    """Keys are what they always were (a change would silently empty every cache), however
    the hash is put together, and the NULs between the parts keep them apart: moving text
    from the inputs into the source gives another key."""
    import hashlib

    from arcjobs.sandbox.cache import cache_key, key_prefix

    version, inputs, code = ["5", "1", {"timeout_s": 2.0}], "[[[1]]]", "x = '\udc80 é'\n"
    whole = f'["5","1",{{"timeout_s":2.0}}]\0{inputs}\0{code}'
    expected = hashlib.sha256(whole.encode("utf-8", "surrogatepass")).hexdigest()
    assert cache_key(key_prefix(version, inputs), code) == expected
    assert cache_key(key_prefix(version, "[[[1]"), "]]\0" + code) != expected


def test_duplicates_in_a_batch_run_once(tmp_path: Path) -> None:
    programs = [Program("tiny", i, benign("same")) for i in range(5)]
    results, summary_run = run(programs, None)
    assert summary_run.stats["executed"] == 1 and summary_run.stats["duplicates"] == 4
    assert len({str(r.record()["train_outputs"]) for r in results}) == 1


def test_duplicates_by_inputs_map_back_through_their_own_augmentation() -> None:
    """Swapping two colours the task does not use leaves its inputs as they are, so the
    same source under either augmentation is one execution; each result is still mapped
    back through its own program's augmentation."""
    colors = list(range(10))
    colors[5], colors[6] = 6, 5
    code = "import numpy as np\ndef transform(g):\n    return np.full((1, 1), 5)\n"
    programs = [
        Program("tiny", "plain", code),
        Program("tiny", "swapped", code, augmentation={"dihedral": 0, "colors": colors}),
    ]
    results, run_ = run(programs, None)
    assert run_.stats["executed"] == 1 and run_.stats["duplicates"] == 1
    outputs = {r.program.sample_id: r.train_outputs for r in results}
    assert outputs == {"plain": [[[5]]], "swapped": [[[6]]]}


def test_garbage_file_is_detected_and_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a database" * 1000)
    cache = ResultCache(path)
    assert cache.rebuilt
    (r,), _ = run([Program("tiny", 0, benign("a"))], cache)
    assert r.status == "ok"
    assert list(tmp_path.glob("c.sqlite.corrupt-*")), "the damaged file is kept aside"
    cache.close()
    assert ResultCache(path).get("missing") is None and not ResultCache(path).rebuilt


def test_garbage_in_the_middle_of_the_file_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cache = ResultCache(path)
    for i in range(2000):
        cache.put(f"k{i}", {"status": "ok", "outputs": [[[i % 10] * 30] * 30]})
    cache.close()
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 8192] = b"\xff" * 8192
    path.write_bytes(bytes(data))
    reopened = ResultCache(path)
    assert reopened.rebuilt
    assert reopened.get("k1") is None


def test_tampered_row_is_a_miss(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cache = ResultCache(path)
    cache.put("k", {"status": "ok", "outputs": [[[1]]]})
    cache.flush()
    assert cache.get("k") == {"status": "ok", "outputs": [[[1]]]}
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE results SET value = ? WHERE key = 'k'", ('{"status":"ok","outputs":[[[9]]]}',)
        )
    assert cache.get("k") is None


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    """Four processes write 300 rows each into one file at the same time."""
    path = tmp_path / "c.sqlite"
    script = (
        "import sys\nfrom arcjobs.sandbox.cache import ResultCache\n"
        "c = ResultCache(sys.argv[1])\n"
        "for i in range(300):\n    c.put(f'{sys.argv[2]}-{i}', {'status': 'ok', 'i': i})\n"
        "    c.flush() if i % 7 == 0 else None\nc.close()\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), str(w)]) for w in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    cache = ResultCache(path)
    assert not cache.rebuilt
    assert all(
        cache.get(f"{w}-{i}") == {"status": "ok", "i": i} for w in range(4) for i in range(300)
    )


def test_processes_opening_a_new_cache_at_once_all_get_it(tmp_path: Path) -> None:
    """Concurrent execute steps create one cache file together; switching a new file to WAL
    takes a lock sqlite does not wait for, so an unlucky opener used to fail at once."""
    script = (
        "import sys, time\nfrom arcjobs.sandbox.cache import ResultCache\n"
        "while time.time() < float(sys.argv[2]):\n    pass\n"
        "c = ResultCache(sys.argv[1])\nc.put(sys.argv[3], {'status': 'ok'})\nc.close()\n"
    )
    for attempt in range(6):
        path = tmp_path / f"c{attempt}.sqlite"
        start = str(time.time() + 1.0)  # every process past its imports, then all at once
        procs = [
            subprocess.Popen([sys.executable, "-c", script, str(path), start, f"w{w}"])
            for w in range(6)
        ]
        assert [p.wait(timeout=120) for p in procs] == [0] * 6, f"attempt {attempt}"
        cache = ResultCache(path)
        assert all(cache.get(f"w{w}") == {"status": "ok"} for w in range(6))
        cache.close()


def test_a_forged_or_moved_row_is_a_miss(tmp_path: Path) -> None:
    """Forged from outside, by someone who can write the cache file but lacks its secret: a
    row rewritten with an unkeyed digest (what the cache used before), and a valid row copied
    under another key. Neither is served; the honest result is computed again."""
    import hashlib
    import json
    import os
    import stat

    cache = ResultCache(tmp_path / "c.sqlite")
    programs = [Program("tiny", 0, benign("a")), Program("tiny", 1, benign("b"))]
    honest, _ = run(programs, cache)
    cache.close()
    secret = tmp_path / "c.sqlite.key"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600 and len(secret.read_bytes()) == 32
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        (key_a, value_a), (key_b, _) = db.execute("SELECT key, value FROM results ORDER BY key")
        forged = json.loads(value_a)
        forged["outputs"] = None
        forged["status"] = "timeout"
        text = json.dumps(forged, separators=(",", ":"))
        digest = hashlib.sha256(text.encode()).hexdigest()[:32]
        db.execute("UPDATE results SET value = ?, digest = ? WHERE key = ?", (text, digest, key_a))
        (moved,) = db.execute("SELECT value, digest FROM results WHERE key = ?", (key_a,))
        db.execute("UPDATE results SET value = ?, digest = ? WHERE key = ?", (*moved, key_b))
    again, run2 = run(programs, ResultCache(tmp_path / "c.sqlite"))
    assert run2.stats["executed"] == 2 and not any(r.cached for r in again)
    assert [r.record() for r in again] == [r.record() for r in honest]
