"""The suite keeps what the libraries leave in the temporary folder inside pytest's own folder."""

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest


def test_the_temporary_folder_of_a_test_and_of_the_processes_it_starts_is_pytests(tmp_path_factory: pytest.TempPathFactory):
    pytests = tmp_path_factory.getbasetemp()
    started = subprocess.run([sys.executable, "-c", "import tempfile; print(tempfile.gettempdir())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    for folder in (tempfile.gettempdir(), started):
        assert Path(folder).is_relative_to(pytests), (folder, pytests)
        # multiprocessing's Unix sockets live below it, and a socket's path has 107 characters at most
        assert len(f"{folder}/pymp-abcdefgh/listener-abcdefgh") <= 107, folder
