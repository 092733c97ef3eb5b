"""tools/system-packages: the one script that installs what pip cannot (or names the
command), shared by .ci/run, make demo and make test."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from tests.conftest import PROJECT_DIR

SCRIPT = PROJECT_DIR / "tools" / "system-packages"


def test_ci_and_both_make_targets_call_it() -> None:
    assert "tools/system-packages test" in (PROJECT_DIR / ".ci" / "run").read_text()
    makefile = (PROJECT_DIR / "Makefile").read_text()
    assert "\ttools/system-packages demo\n" in makefile
    assert "\ttools/system-packages test\n" in makefile


def test_an_unknown_profile_is_refused() -> None:
    run = subprocess.run([str(SCRIPT), "everything"], capture_output=True, text=True)
    assert run.returncode == 2 and "usage" in run.stderr


def test_without_root_it_names_the_command_and_fails() -> None:
    with tempfile.TemporaryDirectory() as empty:  # a PATH with bash and id, nothing else
        os.chmod(empty, 0o755)
        for name in ("bash", "id"):
            os.symlink(shutil.which(name) or "", os.path.join(empty, name))
        command = ["env", f"PATH={empty}", str(SCRIPT), "demo"]
        if os.geteuid() == 0:  # as root it would install: run it as nobody instead, from
            # a copy nobody can reach wherever the checkout lies (a clone in a 0700 directory)
            script = shutil.copy(SCRIPT, os.path.join(empty, "system-packages"))
            os.chmod(script, 0o755)
            command = ["su", "nobody", "-s", "/bin/bash", "-c", f"env PATH={empty} {script} demo"]
        run = subprocess.run(command, capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    assert "missing for 'make demo': openjdk-17-jre-headless maven" in run.stderr
    assert "sudo apt-get install -y --no-install-recommends openjdk-17-jre-headless maven" \
        in run.stderr
