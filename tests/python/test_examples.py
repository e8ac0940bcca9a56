"""The runnable examples in examples/python/ run against a fresh server, so they cannot rot."""

import pathlib
import subprocess
import sys

from conftest import TOKEN, Server

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python"


def test_django_style_example_runs():
    server = Server()
    try:
        result = subprocess.run(
            [sys.executable, str(EXAMPLES / "django_style.py"), "--address", server.address, "--token", TOKEN],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: every check and lookup answered as expected" in result.stdout
