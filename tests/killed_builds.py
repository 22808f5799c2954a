"""Zoo builds that die right after their n-th atomic write (``WEIGHTSPACE_FAULT_AFTER_WRITES``), each
in a process of its own: the kill-and-resume tests of every zoo kind start theirs together, so
that the processes' start-up (importing torch and weightspace, most of their time) runs on every
core instead of one after another. Each build has its own folder; nothing they do depends on when
the others run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


class KilledBuilds:
    """``{n: a build of ``kind`` with ``settings`` in root/killed-n, killed after write n}``."""

    def __init__(self, root: Path, kind: str, settings: dict, points):
        build = f"build_zoo(sys.argv[1], {kind!r}, {settings!r}, progress=False)"
        code = f"import sys; from weightspace.zoo import build_zoo; {build}"
        self.out, self._processes = {}, {}
        for n in points:
            self.out[n] = root / f"killed-{n}"
            env = {**os.environ, "WEIGHTSPACE_FAULT_AFTER_WRITES": str(n), "OMP_NUM_THREADS": "1"}
            command = [sys.executable, "-c", code, str(self.out[n])]
            self._processes[n] = subprocess.Popen(command, env=env, text=True, stderr=subprocess.PIPE)

    def killed(self, n: int) -> Path:
        """Wait for build ``n``, which must have been killed (exit code 137); its folder."""
        process = self._processes[n]
        stderr = process.communicate()[1]
        assert process.returncode == 137, stderr  # it really was killed mid-build
        return self.out[n]

    def close(self) -> None:
        """Stop the builds no test waited for (a test run with -k or -x)."""
        for process in self._processes.values():
            if process.returncode is None:
                process.kill()
                process.communicate()


def killed_builds_fixture(kind: str, settings: dict, points):
    """A module fixture: the :class:`KilledBuilds` of ``points``, started when a test first asks."""

    @pytest.fixture(scope="module")
    def killed_builds(tmp_path_factory):
        builds = KilledBuilds(tmp_path_factory.mktemp("killed"), kind, settings, points)
        yield builds
        builds.close()

    return killed_builds
