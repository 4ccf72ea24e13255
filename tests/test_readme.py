"""Every command and code block in the READMEs and the docs runs as written.

Commands are taken from fenced ``bash`` blocks and from inline code that starts like a command
(``python ...``, ``.venv/bin/python ...``, ``./.ci/...``, ``pip ...``, ``mkdocs ...``). Each
must match a rule below, so a new command in the docs cannot go unchecked:

* quick ``python -m minimax`` runs (:data:`QUICK`) are run as subprocesses, with a timeout, in a
  scratch directory that links ``experiments/`` and ``conf/``; then ``python -m
  minimax.sweep.aggregate`` is run on what they wrote;
* long runs (the default 12-channel solve, sweeps, the validation, the analyses) have their
  Hydra configuration composed with the overrides as written (``-m`` sweeps expanded point by
  point) and validated against the app's schema; the game is built, and a ``convex`` solver is
  only accepted on a convex-concave game. (The default game is solved end to end by
  ``tests/test_app.py``.)
* scripts in ``experiments/`` are imported (their imports resolve; ``main`` does not run);
* ``./.ci/*`` scripts exist, are executable and parse (``bash -n``); ``pip install -e
  ".[EXTRA]"`` names an extra of ``pyproject.toml``; ``mkdocs build --strict`` is
  ``tests/test_docs.py``.

Python blocks are executed, each in a fresh namespace, in one subprocess.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from minimax.config import AppConfig, SweepAppConfig, game_dict, validate_config
from minimax.convex import convexity
from minimax.game import Game
from minimax.runtime import conf_dir

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", ROOT / "experiments" / "README.md",
         *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`([^`\n]+)`")
COMMAND = re.compile(r"^(?:\./\.ci/\S+|(?:\.venv/bin/)?(?:python|pip|mkdocs)\s)")
# Run for real (seconds each); every other `python -m minimax` command is composed.
QUICK = {
    ("game=mfm_jamming", "solver=convex", "levers=[s]", "attacker_budget=20"),
    ("matrix=experiments/data/rps_biased.csv",),
}
TIMEOUT = 240
# Command-line tools over finished runs: their parser must accept the arguments as written.
TOOLS = ("minimax.validate.refit",)


def _where(path: Path, text: str, pos: int) -> str:
    return f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, pos) + 1}"


def _blocks() -> list[tuple[str, str, str]]:
    """(where, language, code) of every fenced block."""
    out = []
    for path in FILES:
        text = path.read_text()
        for m in FENCE.finditer(text):
            out.append((_where(path, text, m.start()), m.group(1), m.group(2)))
    return out


def _split(line: str) -> list[list[str]]:
    """``a && b`` -> [[a...], [b...]]; comments, leading ``VAR=value`` environment settings and
    '.venv/bin/' prefixes dropped."""
    words = shlex.split(line, comments=True)
    parts = [list(g) for k, g in itertools.groupby(words, lambda w: w == "&&") if not k]
    parts = [list(itertools.dropwhile(lambda w: re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", w), p))
             for p in parts]
    return [[re.sub(r"^\.venv/bin/", "", p[0]), *p[1:]] for p in parts if p]


def _commands() -> list[tuple[str, list[str]]]:
    out = []
    for where, lang, code in _blocks():
        if lang in ("bash", "sh", "shell", "console"):
            for line in code.replace("\\\n", " ").splitlines():
                out.extend((where, argv) for argv in _split(line))
    for path in FILES:
        text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), path.read_text())
        for m in INLINE.finditer(text):
            if COMMAND.match(m.group(1)):
                out.extend((_where(path, text, m.start()), argv) for argv in _split(m.group(1)))
    return out


COMMANDS = _commands()


def _kind(argv: list[str]) -> str:
    if argv[0].startswith("./.ci/"):
        return "ci"
    if argv[0] == "pip" or argv[:3] == ["python", "-m", "pip"]:
        return "pip"
    if argv[:3] == ["python", "-m", "pytest"]:
        return "pytest"
    if argv[0] == "mkdocs" or argv[:3] == ["python", "-m", "mkdocs"]:
        return "mkdocs"
    if argv[:3] == ["python", "-m", "minimax"]:
        return "quick" if tuple(argv[3:]) in QUICK else "app"
    if argv[:3] == ["python", "-m", "minimax.sweep"]:
        return "sweep"
    if argv[:3] == ["python", "-m", "minimax.sweep.aggregate"]:
        return "aggregate"
    if argv[:3] == ["python", "-m", "minimax.validate"]:
        return "validate"
    if argv[:2] == ["python", "-m"] and argv[2] in TOOLS:
        return "tool"
    if argv[:2] == ["python", "experiments/analyses.py"]:
        return "analysis"
    if len(argv) == 2 and argv[0] == "python" and re.fullmatch(r"experiments/\w+\.py", argv[1]):
        return "script"
    return "unknown"


def _by_kind(kind: str) -> list[tuple[str, list[str]]]:
    return [(w, a) for w, a in COMMANDS if _kind(a) == kind]


def _ids(cases):
    return [f"{w} {' '.join(a)}" for w, a in cases]


# ----------------------------------------------------------------------------- the inventory
def test_the_docs_have_commands_and_every_command_has_a_rule():
    assert len(COMMANDS) >= 20
    unknown = [f"{w}: {' '.join(a)}" for w, a in COMMANDS if _kind(a) == "unknown"]
    assert not unknown, "commands no rule checks (add one to tests/test_readme.py):\n" + \
        "\n".join(unknown)
    # the two commands at the top of the README
    top = [a for w, a in COMMANDS if w.startswith("README.md")][:3]
    assert top == [["./.ci/setup"], ["python", "-m", "minimax"], ["./.ci/test"]], top
    # the README's command-line example is one of the runs
    assert any(_kind(a) == "quick" and "solver=convex" in a for w, a in COMMANDS
               if w.startswith("README.md"))


def test_rules_reject_what_they_should():
    assert _kind(["python", "-m", "minimax.nope"]) == "unknown"
    assert _kind(["python", "-m", "minimax.validate.nope", "RUN"]) == "unknown"
    assert _kind(["python", "experiments/bench_core.py", "--games", "8"]) == "unknown"
    with pytest.raises(AssertionError, match="convex"):
        _check_app(["game=mfm_jamming", "solver=convex", "levers=[n,s]", "attacker_budget=20"])


# ----------------------------------------------------------------------------- composed configs
def _expand(overrides: list[str]) -> list[list[str]]:
    """Hydra overrides with sweeps (``a=1,2``) expanded into one override list per point."""
    parser = OverridesParser.create()
    axes = []
    for o in parser.parse_overrides(overrides):
        text = o.input_line
        if o.is_sweep_override():
            axes.append([f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
        else:
            axes.append([text])
    return [list(p) for p in itertools.product(*axes)]


def _compose(primary: str, overrides: list[str], hydra_node: bool = False):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name=primary, overrides=overrides,
                       return_hydra_config=hydra_node)


def _points(primary: str, args: list[str]):
    """Composed configs of every point a command would run (``-m``: its sweep, expanded)."""
    multirun = "-m" in args or "--multirun" in args
    overrides = [a for a in args if a not in ("-m", "--multirun")]
    cfgs = []
    for point in _expand(overrides):
        cfg = _compose(primary, point, hydra_node=multirun)
        params = dict(cfg.hydra.sweeper.get("params") or {}) if multirun else {}
        if params:  # a preset's own sweep (hydra.sweeper.params)
            extra = [f"{k}={v}" for k, v in params.items()]
            cfgs.extend(_compose(primary, point + q, hydra_node=False)
                        for q in _expand(extra))
        else:
            cfgs.append(cfg)
    assert cfgs
    return cfgs


def _check_app(args: list[str]) -> None:
    for cfg in _points("config", args):
        app = validate_config(cfg, AppConfig)
        if app.matrix is not None:
            assert (ROOT / app.matrix).is_file(), app.matrix
            continue
        game = Game.from_dict(game_dict(app))
        if app.solver.method == "convex":
            ok, why = convexity(game)
            assert ok, f"solver=convex on a game that is not convex-concave: {why}"


@pytest.mark.parametrize(("where", "argv"), _by_kind("app"), ids=_ids(_by_kind("app")))
def test_app_commands_compose(where, argv):
    _check_app(argv[3:])


@pytest.mark.parametrize(("where", "argv"), _by_kind("sweep"), ids=_ids(_by_kind("sweep")))
def test_sweep_commands_compose(where, argv):
    for cfg in _points("sweep", argv[3:]):
        validate_config(cfg, SweepAppConfig)


@pytest.mark.parametrize(("where", "argv"), _by_kind("validate"),
                         ids=_ids(_by_kind("validate")))
def test_validate_commands_compose(where, argv):
    for cfg in _points("validate", argv[3:]):
        assert "validate" in cfg


@pytest.mark.parametrize(("where", "argv"), _by_kind("analysis"),
                         ids=_ids(_by_kind("analysis")))
def test_analysis_commands_compose(where, argv):
    for cfg in _points("config", argv[2:]):
        assert cfg.analysis.name == argv[2].split("=", 1)[1]
        Game.from_dict(game_dict(validate_config(
            {k: v for k, v in cfg.items() if k not in ("analysis",)}, AppConfig)))


@pytest.mark.parametrize(("where", "argv"), _by_kind("script"), ids=_ids(_by_kind("script")))
def test_experiment_scripts_import(where, argv):
    path = ROOT / argv[1]
    assert path.is_file(), path
    spec = importlib.util.spec_from_file_location(f"_docs_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    before = list(sys.path)
    spec.loader.exec_module(module)
    assert sys.path == before, f"{argv[1]} changes sys.path"
    assert callable(getattr(module, "main", None)), f"{argv[1]} has no main()"


@pytest.mark.parametrize(("where", "argv"), _by_kind("tool"), ids=_ids(_by_kind("tool")))
def test_tool_commands_parse(where, argv, monkeypatch):
    module = importlib.import_module(argv[2])
    parsed = {}

    def stop(self, args=None, namespace=None):
        parsed["args"] = _parse(self, args, namespace)
        raise SystemExit(0)

    _parse = argparse.ArgumentParser.parse_args
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", stop)
    with pytest.raises(SystemExit) as stopped:
        module.main(argv[3:])
    assert stopped.value.code == 0 and "args" in parsed, argv


def test_benchmarks_do_not_import_the_test_suite():
    for path in sorted((ROOT / "experiments").glob("*.py")):
        source = path.read_text()
        assert not re.search(r"^\s*(from|import)\s+tests\b", source, re.M), path
        assert "sys.path" not in source, path


# ----------------------------------------------------------------------------- small checks
@pytest.mark.parametrize(("where", "argv"), _by_kind("pytest"), ids=_ids(_by_kind("pytest")))
def test_pytest_commands_name_real_tests(where, argv):
    paths = [a for a in argv[3:] if not a.startswith("-")]
    assert paths, argv
    for a in paths:
        assert (ROOT / a.split("::")[0]).exists(), a


@pytest.mark.parametrize(("where", "argv"), _by_kind("ci"), ids=_ids(_by_kind("ci")))
def test_ci_scripts(where, argv):
    path = ROOT / argv[0]
    assert len(argv) == 1 and path.is_file() and os.access(path, os.X_OK), argv
    subprocess.run(["bash", "-n", str(path)], check=True)


@pytest.mark.parametrize(("where", "argv"), _by_kind("pip"), ids=_ids(_by_kind("pip")))
def test_pip_commands_name_real_extras(where, argv):
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    spec = argv[-1]
    m = re.fullmatch(r"\.\[([\w,]+)\]", spec)
    assert argv[-2] == "-e" and m, argv
    assert set(m.group(1).split(",")) <= set(extras), (m.group(1), sorted(extras))
    setup = (ROOT / ".ci" / "setup").read_text()
    assert all(e in setup for e in m.group(1).split(",")), "CI must install what docs use"


@pytest.mark.parametrize(("where", "argv"), _by_kind("mkdocs"), ids=_ids(_by_kind("mkdocs")))
def test_mkdocs_command_is_the_tested_build(where, argv):
    assert argv[-2:] == ["build", "--strict"], argv
    assert (ROOT / "tests" / "test_docs.py").is_file() and (ROOT / "mkdocs.yml").is_file()


# ----------------------------------------------------------------------------- real runs
def _env() -> dict[str, str]:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_quick_commands_run_and_aggregate(tmp_path):
    for name in ("experiments", "conf"):
        (tmp_path / name).symlink_to(ROOT / name)
    quick = sorted({tuple(a) for _, a in _by_kind("quick")})
    assert {q[3:] for q in quick} == QUICK, "every QUICK command must appear in the docs"
    for argv in quick:
        result = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, env=_env(),
                                capture_output=True, text=True, timeout=TIMEOUT)
        assert result.returncode == 0, f"{' '.join(argv)}:\n{result.stderr[-3000:]}"
    results = sorted(tmp_path.glob("outputs/*/*/result.json"))
    assert len(results) == len(quick)
    aggregate = _by_kind("aggregate")
    assert aggregate, "the docs show how to aggregate runs"
    for _, argv in aggregate:
        result = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, env=_env(),
                                capture_output=True, text=True, timeout=TIMEOUT)
        assert result.returncode == 0, f"{' '.join(argv)}:\n{result.stderr[-3000:]}"
        assert f"aggregate: {len(quick)} points" in result.stdout, result.stdout


_RUNNER = """
import json, sys, traceback
from minimax.runtime import enable_compilation_cache
enable_compilation_cache()  # as the command line does
failed = []
for where, code in json.load(open(sys.argv[1])):
    try:
        exec(compile(code, where, "exec"), {"__name__": "__docs__"})
    except Exception:
        failed.append(where + "\\n" + traceback.format_exc())
print("\\n".join(failed), file=sys.stderr)
sys.exit(1 if failed else 0)
"""


@pytest.mark.slow
def test_python_blocks_execute(tmp_path):
    blocks = [(w, code) for w, lang, code in _blocks() if lang == "python"]
    assert len(blocks) >= 4
    listing = tmp_path / "blocks.json"
    listing.write_text(json.dumps(blocks))
    result = subprocess.run([sys.executable, "-c", _RUNNER, str(listing)], cwd=ROOT,
                            env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-5000:]
