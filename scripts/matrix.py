"""Run the test suite on the lowest and the newest allowed dependencies, on every Python.

Each leg is one interpreter and one resolution, in its own venv under ``.venv-matrix/``:

- ``lowest``: uv's ``--resolution lowest-direct`` on pyproject.toml, so every dependency
  and every package of the ``test`` and ``docs`` extras is at the floor pyproject.toml
  declares (the leg fails when the resolver cannot install a declared floor exactly, as a
  wheel for that Python);
  the docs are also built there, since the main run builds them on the newest.
- ``newest``: the newest release of everything that pyproject.toml allows.

A leg installs smtpx editable with those extras and runs pytest with ``CI=true``, so the
real-server tests (Postfix, smtp-sink, Redis) fail instead of skipping.  Every leg runs,
then a table of legs and times is printed; the exit status is non-zero when any failed.

Usage (``scripts/test --matrix`` runs it after the main run; ``CI=true`` implies that)::

    .venv/bin/python scripts/matrix.py [--leg NAME]... [--list] [-- PYTEST_ARGS...]

``--leg`` picks legs by name or part of one (``--leg debian``, ``--leg 3.13-lowest``).
``SMTPX_MATRIX_PYTHONS="3.12=/opt/py312/bin/python3 ..."`` replaces the interpreter list
(default: the newest pyenv 3.11, 3.12 and 3.13, and Debian's /usr/bin/python3).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
VENVS = ROOT / ".venv-matrix"
EXTRAS = ("test", "docs")
RESOLUTIONS = {"lowest": "lowest-direct", "newest": "highest"}
PYENV_MINORS = ("3.11", "3.12", "3.13")
DEBIAN_PYTHON = Path("/usr/bin/python3")
UV_REQUIREMENT = "uv>=0.5"
# pytest's closing line: "== 3 failed, 1632 passed, 2 skipped in 41.2s ==" ("=" only without -q)
SUMMARY = re.compile(r"^=*\s*(?P<counts>(?:\d+ [a-z]+(?:, )?)+) in [\d.]+s\b")
COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)")


@dataclass(frozen=True)
class Leg:
    name: str
    python: Path | None
    resolution: str  # a key of RESOLUTIONS

    @property
    def venv(self) -> Path:
        return VENVS / self.name

    @property
    def venv_python(self) -> Path:
        return self.venv / "bin" / "python"


@dataclass
class Outcome:
    leg: Leg
    seconds: float
    ok: bool
    note: str
    counts: dict[str, int]


def pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def newest_pyenv(minor: str) -> Path | None:
    """The newest pyenv CPython of *minor* (3.12 -> versions/3.12.N/bin/python3.12)."""
    candidates = []
    for path in (pyenv_root() / "versions").glob(f"{minor}.*/bin/python{minor}"):
        patch = path.parents[1].name.removeprefix(f"{minor}.")
        if patch.isdigit():
            candidates.append((int(patch), path))
    return max(candidates)[1] if candidates else None


def interpreters() -> dict[str, Path | None]:
    """Leg label -> interpreter (None: not found here)."""
    override = os.environ.get("SMTPX_MATRIX_PYTHONS", "").split()
    if override:
        pairs = [item.partition("=") for item in override]
        return {label: Path(path) for label, _, path in pairs}
    found: dict[str, Path | None] = {f"py{minor}": newest_pyenv(minor) for minor in PYENV_MINORS}
    found["debian"] = DEBIAN_PYTHON if DEBIAN_PYTHON.exists() else None
    return found


def legs() -> list[Leg]:
    """Every leg, its interpreter None where that is not found here."""
    return [
        Leg(f"{label}-{resolution}", python, resolution)
        for label, python in interpreters().items()
        for resolution in RESOLUTIONS
    ]


def uv() -> Path:
    """uv beside this interpreter (the main .venv), installed with pip on first use."""
    path = Path(sys.executable).parent / "uv"
    if not path.exists():
        run([sys.executable, "-m", "pip", "install", "--quiet", UV_REQUIREMENT])
    return path


def run(command: list[str | Path], env: dict[str, str] | None = None) -> None:
    subprocess.run([str(part) for part in command], check=True, cwd=ROOT, env=env)  # noqa: S603


def declared() -> list[tuple[str, Requirement]]:
    """(where, requirement) for the dependencies and every extra, in pyproject.toml order."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    groups = [("runtime", project["dependencies"]), *project["optional-dependencies"].items()]
    return [(where, Requirement(line)) for where, lines in groups for line in lines]


def pinned(lock: Path) -> dict[str, str]:
    """Canonical name -> version from a ``uv pip compile`` output."""
    out: dict[str, str] = {}
    for line in lock.read_text("utf-8").splitlines():
        name, sep, version = line.partition("==")
        if sep and not line.startswith((" ", "#")):
            out[canonicalize_name(name.split("[")[0])] = version.split(";")[0].strip()
    return out


def floor(requirement: Requirement) -> Version | None:
    floors = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==")]
    return max(floors) if floors else None


def floor_problems(versions: dict[str, str]) -> list[str]:
    """Declared floors, in any extra, that the lowest resolution did not install exactly."""
    problems = []
    for where, requirement in declared():
        name, lowest = canonicalize_name(requirement.name), floor(requirement)
        if lowest is None or name not in versions:  # no floor, or not installed in this leg
            continue
        if Version(versions[name]) != lowest:
            problems.append(
                f"[{where}] {requirement}: the lowest resolution installs {versions[name]}, "
                f"so the floor {lowest} is not what the tests run on"
            )
    return problems


def prepare(leg: Leg, uv_path: Path) -> dict[str, str]:
    """A fresh venv for *leg* with smtpx and its extras; returns the resolved versions."""
    assert leg.python is not None  # main() runs only the legs whose interpreter exists
    shutil.rmtree(leg.venv, ignore_errors=True)
    run([uv_path, "venv", "--quiet", "--python", leg.python, leg.venv])
    lock = leg.venv / "requirements.txt"
    extras = [arg for extra in EXTRAS for arg in ("--extra", extra)]
    resolution = ["--resolution", RESOLUTIONS[leg.resolution]]
    python: list[str | Path] = ["--python", leg.venv_python]
    # Wheels only: a floor with no wheel for this Python (matplotlib 3.8 on 3.13) would be
    # built from source for minutes; instead the resolver moves past it and the floor
    # check says so.
    wheels = ["--only-binary", ":all:"]
    run(
        [
            uv_path,
            "pip",
            "compile",
            "--quiet",
            "--no-header",
            "pyproject.toml",
            *extras,
            *resolution,
            *python,
            *wheels,
            "--output-file",
            lock,
        ]
    )
    run([uv_path, "pip", "sync", "--quiet", *python, *wheels, lock])
    run([uv_path, "pip", "install", "--quiet", "--no-deps", *python, "--editable", "."])
    return pinned(lock)


def describe(leg: Leg, number: int, total: int, versions: dict[str, str]) -> None:
    version = subprocess.run(  # noqa: S603 - the leg's own interpreter
        [leg.venv_python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    shown: dict[str, dict[str, str]] = {"runtime": {}, "extras": {}}
    for where, requirement in declared():
        name = canonicalize_name(requirement.name)
        if name in versions:
            shown["runtime" if where == "runtime" else "extras"].setdefault(name, versions[name])
    print(
        f"\n=== matrix leg {number}/{total}: {leg.name}: Python {version} ({leg.python}), "
        f"{leg.resolution} dependencies ({RESOLUTIONS[leg.resolution]})",
        flush=True,
    )
    for kind, pins in shown.items():
        print(f"    {kind}: " + ", ".join(f"{n} {v}" for n, v in pins.items()), flush=True)


def pytest(leg: Leg, args: list[str]) -> tuple[int, dict[str, int]]:
    """Run pytest in *leg*, echoing its output; returns its exit code and final counts."""
    env = os.environ | {"CI": "true", "SMTPX_REQUIRE_REAL_SERVERS": "1"}
    env.pop("VIRTUAL_ENV", None)
    command = [str(leg.venv_python), "-m", "pytest", "-p", "no:cacheprovider", *args]
    counts: dict[str, int] = {}
    with subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if match := SUMMARY.match(line.strip()):
                counts = {}
                for number, word in COUNT.findall(match["counts"]):
                    key = "errors" if word.startswith("error") else word
                    counts[key] = counts.get(key, 0) + int(number)
    return process.returncode, counts


def docs(leg: Leg) -> bool:
    env = os.environ | {"NO_MKDOCS_2_WARNING": "1"}
    site = VENVS / f"{leg.name}-site"
    command: list[str | Path] = [
        leg.venv / "bin" / "mkdocs",
        "build",
        "--strict",
        "--quiet",
        "--site-dir",
        site,
    ]
    try:
        run(command, env=env)
    except subprocess.CalledProcessError:
        return False
    finally:
        shutil.rmtree(site, ignore_errors=True)
    print(f"    docs: mkdocs build --strict passed on {leg.name}", flush=True)
    return True


def run_leg(leg: Leg, number: int, total: int, uv_path: Path, args: list[str]) -> Outcome:
    started = time.monotonic()

    def outcome(ok: bool, note: str, counts: dict[str, int] | None = None) -> Outcome:
        return Outcome(leg, time.monotonic() - started, ok, note, counts or {})

    try:
        versions = prepare(leg, uv_path)
    except subprocess.CalledProcessError as error:
        return outcome(False, f"install failed ({error.cmd[1:3]})")
    describe(leg, number, total, versions)
    if leg.resolution == "lowest":
        problems = floor_problems(versions)
        for problem in problems:
            print(f"    FLOOR NOT TESTED: {problem}", flush=True)
        if problems:
            return outcome(False, "a declared floor is not the version tested")
        if not docs(leg):
            return outcome(False, "mkdocs build --strict failed")
    code, counts = pytest(leg, args)
    if code != 0:
        return outcome(False, f"pytest exit {code}", counts)
    if not counts.get("passed"):
        return outcome(False, "pytest ran no test", counts)
    return outcome(True, "ok", counts)


def report(outcomes: list[Outcome], missing: list[str], total_seconds: float) -> None:
    print(f"\n=== matrix: {len(outcomes)} legs in {total_seconds:.0f}s", flush=True)
    for o in outcomes:
        counts = ", ".join(f"{n} {word}" for word, n in o.counts.items()) or "-"
        status = "ok  " if o.ok else "FAIL"
        print(f"    {status} {o.leg.name:<16} {o.seconds:6.1f}s  {counts}  ({o.note})")
    for message in missing:
        print(f"    FAIL {message}")
    passed = sum(o.counts.get("passed", 0) for o in outcomes)
    failed = sum(o.counts.get("failed", 0) + o.counts.get("errors", 0) for o in outcomes)
    skipped = sum(o.counts.get("skipped", 0) for o in outcomes)
    print(f"matrix: {passed} passed, {failed} failed, {skipped} skipped", flush=True)


def main(argv: list[str]) -> int:
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(usage=__doc__)
    parser.add_argument("--leg", action="append", default=[])
    parser.add_argument("--list", action="store_true")
    options = parser.parse_args(argv[:split])
    pytest_args = argv[split + 1 :]
    wanted: list[str] = options.leg
    chosen = [leg for leg in legs() if not wanted or any(w in leg.name for w in wanted)]
    if not chosen:
        print(f"matrix: no leg matches {wanted}", file=sys.stderr)
        return 2
    missing = [
        f"{leg.name}: no interpreter ({leg.python or 'not found'})"
        for leg in chosen
        if leg.python is None or not leg.python.exists()
    ]
    chosen = [leg for leg in chosen if leg.python is not None and leg.python.exists()]
    if options.list:
        for leg in chosen:
            print(f"{leg.name}: {leg.python}, {leg.resolution}")
        for message in missing:
            print(message)
        return 0
    started = time.monotonic()
    uv_path = uv()
    os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")  # only the interpreters listed
    outcomes = [
        run_leg(leg, number, len(chosen), uv_path, pytest_args)
        for number, leg in enumerate(chosen, 1)
    ]
    report(outcomes, missing, time.monotonic() - started)
    return 0 if all(o.ok for o in outcomes) and not missing else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
