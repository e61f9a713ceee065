"""`imgsynth studio` as a user starts and stops it."""

from __future__ import annotations

import http.cookiejar
import re
import signal
import subprocess
import sys
import time
import urllib.request

from typer.testing import CliRunner

from imgsynth.cli import app
from tests.studio.conftest import local_recipe


def test_a_path_that_does_not_exist_is_a_message(tmp_path):
    result = CliRunner().invoke(app, ["studio", str(tmp_path / "nowhere.yaml")])
    assert result.exit_code == 2 and "no such file or folder" in result.output
    assert "Traceback" not in result.output


def test_the_command_prints_its_address_serves_the_page_and_stops_on_sigterm(tmp_path):
    recipe = local_recipe("compose.yaml", tmp_path)
    stderr = tmp_path / "stderr.txt"
    with open(stderr, "w") as err:
        process = subprocess.Popen([sys.executable, "-m", "imgsynth", "studio", str(recipe), "--port", "0"],
                                   stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (match := re.search(r"http://127\.0\.0\.1:\d+/\?key=\S+", stderr.read_text())):
            assert process.poll() is None and time.monotonic() < deadline, stderr.read_text()
            time.sleep(0.1)
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        with opener.open(match.group(0), timeout=10) as response:  # the key, then the page
            assert response.status == 200 and b"imgsynth studio" in response.read()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert "imgsynth studio: stopped" in stderr.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
