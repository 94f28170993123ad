"""The console command: stages listed once, dispatched to their modules, one-line errors, Hydra's flags."""

import inspect

import pytest

from genre_hpc import cli
from genre_hpc.infra.config import STAGES

from .helpers import CONF, run_cli


@pytest.mark.parametrize("name", list(STAGES))
def test_every_stage_has_a_config_a_module_and_a_line_of_help(name):
    assert (CONF / f"{name}.yaml").exists()
    assert f"  {name} " in cli.USAGE
    if name == "run":  # no module of its own: the CLI runs the stages it lists, in turn
        assert not STAGES[name].in_run
        return
    module = cli.stage_module(name)
    assert list(inspect.signature(module.run).parameters) == ["cfg", "client", "out"]
    assert module.__doc__.strip()


def test_cli_reports_a_wrong_value_in_one_line_without_traceback(tmp_path):
    result = run_cli("extract", f"output.dir={tmp_path}", "cluster.n_workers=0", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert "cluster.n_workers" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_stops_on_a_missing_corpus_with_one_message(tmp_path):
    result = run_cli(
        "extract", f"output.dir={tmp_path}/out", f"data.root={tmp_path}/nope", cwd=tmp_path, check=False
    )
    assert result.returncode == 2
    assert "data.root" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_help_lists_stages_and_hydra_help_works(tmp_path):
    assert "extract" in run_cli("--help").stdout
    assert "cluster" in run_cli("train", "--help", cwd=tmp_path).stdout
    shown = run_cli("extract", "--cfg", "job", "cluster.n_workers=3", cwd=tmp_path).stdout
    assert "n_workers: 3" in shown


def test_unknown_stage_is_refused(tmp_path):
    result = run_cli("fly", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "unknown stage" in result.stderr
