"""Every optional extra must install on a fresh machine: pip resolves them all together, as into
an empty environment (``--ignore-installed``), without installing anything (``--dry-run``).

All extras at once: a set that resolves together also resolves one by one. Needs the package
index (PyPI, or the machine's configured one); skipped when pip cannot reach any.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _index_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
def test_every_extra_resolves_together_on_a_fresh_environment(tmp_path):
    if not _index_reachable():
        pytest.skip("the package index is not reachable")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
         f"{ROOT}[{','.join(sorted(extras))}]"],
        capture_output=True, text=True, timeout=900,
    )
    errors = [line for line in result.stderr.splitlines() if not line.startswith("WARNING")]
    assert result.returncode == 0, "\n".join(errors[-15:])
    chosen = {item["metadata"]["name"].lower().replace("_", "-") for item in json.loads(report.read_text())["install"]}
    for extra, requirements in extras.items():
        for requirement in requirements:
            name = requirement.split(";")[0].split("[")[0]
            for sep in "<>=!~ ":
                name = name.split(sep)[0]
            assert name.lower().replace("_", "-") in chosen, f"extra {extra}: {name} would not be installed"
