"""What the `sandbox` service enforces, proved from inside a running container.

Each test starts the service exactly as the compose backend and users do
(`docker compose run --rm -T sandbox ...`), runs a small probe with the image's python, and
checks both the probe's verdict and that the probe really ran (so an image that fails to start
cannot pass as "blocked").
"""

from __future__ import annotations

import json
import textwrap

import pytest

pytestmark = pytest.mark.docker


def probe(compose, data_root, code: str, timeout: float = 120, **env: str) -> dict:
    """Run `code` in the sandbox container; it must print one JSON object as its last line."""
    done = compose.sandbox(
        data_root, "python3", "-c", textwrap.dedent(code), timeout=timeout, **env
    )
    assert done.returncode == 0, f"probe failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_outbound_connections_fail(compose, sandbox_image, data_root):
    result = probe(
        compose,
        data_root,
        """
        import json, os, socket
        out = {"interfaces": sorted(os.listdir("/sys/class/net"))}
        # A public address and the default bridge gateway (the host, from a bridged container).
        for ip in ("1.1.1.1", "172.17.0.1"):
            try:
                socket.create_connection((ip, 53), timeout=3).close()
                out[ip] = "connected"
            except OSError as e:
                out[ip] = type(e).__name__
        print(json.dumps(out))
        """,
    )
    assert result["interfaces"] == ["lo"]
    assert result["1.1.1.1"] != "connected"
    assert result["172.17.0.1"] != "connected"


def test_dns_lookups_fail(compose, sandbox_image, data_root):
    result = probe(
        compose,
        data_root,
        """
        import json, socket
        try:
            socket.getaddrinfo("pypi.org", 443)
            out = "resolved"
        except socket.gaierror as e:
            out = "gaierror"
        print(json.dumps({"dns": out}))
        """,
    )
    assert result["dns"] == "gaierror"


def test_root_filesystem_is_read_only_and_scratch_is_writable(compose, sandbox_image, data_root):
    result = probe(
        compose,
        data_root,
        """
        import errno, json, sysconfig
        out = {}
        for d in ("/", "/etc", "/usr/local/bin", sysconfig.get_paths()["purelib"], "/tmp", "/data"):
            try:
                with open(f"{d.rstrip('/')}/probe.txt", "w") as f:
                    f.write("x")
                out[d] = "written"
            except OSError as e:
                out[d] = errno.errorcode.get(e.errno, str(e.errno))
        print(json.dumps(out))
        """,
    )
    for d, verdict in result.items():
        if d in ("/tmp", "/data"):
            assert verdict == "written", f"{d} must be writable scratch, got {verdict}"
        else:
            assert verdict == "EROFS", f"{d}: expected a read-only file system, got {verdict}"
    assert (data_root.path / "probe.txt").read_text() == "x"


def test_scratch_cannot_hold_executables(compose, sandbox_image, data_root):
    """A program may write bytes to /tmp but never run them as a binary (tmpfs noexec)."""
    result = probe(
        compose,
        data_root,
        """
        import json, os, subprocess
        with open("/tmp/tool", "w") as f:
            f.write("#!/bin/sh\\necho ran\\n")
        os.chmod("/tmp/tool", 0o755)
        try:
            out = subprocess.run(["/tmp/tool"], capture_output=True, text=True).stdout.strip()
        except PermissionError:
            out = "denied"
        print(json.dumps({"exec": out}))
        """,
    )
    assert result["exec"] == "denied"


def test_runs_as_the_configured_non_root_user(compose, sandbox_image, data_root):
    result = probe(
        compose,
        data_root,
        """
        import json, os
        print(json.dumps({"ids": [os.getuid(), os.geteuid(), os.getgid(), os.getegid()]}))
        """,
    )
    uid, euid, gid, egid = result["ids"]
    assert 0 not in result["ids"]
    assert (uid, euid, gid, egid) == (data_root.uid, data_root.uid, data_root.gid, data_root.gid)


def test_no_capabilities_and_no_new_privileges(compose, sandbox_image, data_root):
    result = probe(
        compose,
        data_root,
        """
        import json
        fields = {}
        for line in open("/proc/self/status"):
            key, _, value = line.partition(":")
            if key.startswith("Cap") or key == "NoNewPrivs":
                fields[key] = value.strip()
        print(json.dumps(fields))
        """,
    )
    for key in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"):
        assert int(result[key], 16) == 0, f"{key} = {result[key]}"
    assert result["NoNewPrivs"] == "1"


def test_fork_bomb_is_stopped_by_the_pids_limit(compose, sandbox_image, data_root):
    """A real (exponential) fork bomb against the shipped pids limit (512, a literal in
    compose.yaml: Compose v1 cannot take it from a variable), bounded for the shared machine
    by a 3 s deadline after which every bomb process exits. Failed forks back off for 50 ms,
    so the bomb holds processes rather than burning both cores."""
    limit = 512
    result = probe(
        compose,
        data_root,
        """
        import errno, json, os, time
        root, deadline, refused, peak = os.getpid(), time.monotonic() + 3, 0, 0
        def current():
            for p in ("/sys/fs/cgroup/pids/pids.current", "/sys/fs/cgroup/pids.current"):
                try:
                    return int(open(p).read())
                except OSError:
                    pass
            return -1
        while time.monotonic() < deadline:
            try:
                os.fork()  # parent and child both carry on bombing
            except OSError as e:
                assert e.errno == errno.EAGAIN, e
                refused += 1
                time.sleep(0.05)
            if os.getpid() == root:
                peak = max(peak, current())
        if os.getpid() != root:
            os._exit(0)
        print(json.dumps({"refused": refused, "peak": peak}))
        """,
    )
    assert result["refused"] > 0, "the bomb was never refused a fork"
    assert 0 < result["peak"] <= limit


def test_memory_limit_kills_an_oversized_allocation(compose, sandbox_image, data_root):
    """1 GiB of touched memory under a 256 MiB limit: the kernel's OOM killer ends the
    program (exit 137 through docker-init), the host is never at risk."""
    done = compose.sandbox(
        data_root,
        "python3",
        "-c",
        "b = bytearray(1 << 30); print('survived', len(b))",
        ARCJOBS_SANDBOX_MEMORY="256m",
    )
    assert "survived" not in done.stdout
    assert done.returncode == 137, (done.returncode, done.stderr[-2000:])
