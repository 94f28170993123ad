from pathlib import Path

import pytest

from genre_hpc.core.errors import ConfigError
from genre_hpc.infra import config

from .conftest import make_config, run_cli

CONF = Path(__file__).resolve().parents[1] / "conf"
STAGES = ["extract", "train", "tune", "run", "demo-data"]
GROUPS = {
    group.name: sorted(p.stem for p in group.glob("*.yaml")) for group in CONF.iterdir() if group.is_dir()
}


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_config_composes_and_passes_its_checks(stage, tmp_path):
    cfg = make_config(stage, [f"output.dir={tmp_path}"])
    assert cfg.stage == stage
    assert cfg.cluster.kind == "local"
    assert cfg.data.root is None and cfg.data.demo.root == f"{tmp_path}/demo-corpus"
    config.check(cfg)


@pytest.mark.parametrize(
    "group, option", [(g, o) for g, options in GROUPS.items() if g != "local" for o in options]
)
def test_every_option_of_every_group_composes(group, option, tmp_path):
    cfg = make_config("run", [f"output.dir={tmp_path}", f"{group}={option}"])
    assert cfg[group] is not None


@pytest.mark.parametrize(
    "override, key",
    [
        ("cluster.n_workers=0", "cluster.n_workers"),
        ("cluster.threads_per_worker=two", "cluster.threads_per_worker"),
        ("extract.batch_size=-3", "extract.batch_size"),
        ("features.segment_seconds=0.2", "features.segment_seconds"),
        ("features.min_seconds=0.01", "features.min_seconds"),
        ("features.sample_rate=abc", "features.sample_rate"),
        ("features.n_mfcc=500", "features.n_mfcc"),
        ("split.test_fraction=1.5", "split.test_fraction"),
        ("search.cv_folds=1", "search.cv_folds"),
        ("search.grid.max_depth=3", "search.grid.max_depth"),
        ("stages=[extract,fly]", "stages"),
        ("search.scoring=acuracy", "search.scoring"),
    ],
)
def test_wrong_values_name_their_key(override, key, tmp_path):
    cfg = make_config("run", [f"output.dir={tmp_path}", override])
    with pytest.raises(ConfigError) as info:
        config.check(cfg)
    assert info.value.key == key
    assert f"`{key}`" in str(info.value)


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


def test_compare_models_are_checked_before_anything_runs(tmp_path):
    cfg = make_config("compare", [f"output.dir={tmp_path}", "compare.models=[knn,lasso]"])
    with pytest.raises(ConfigError, match="lasso") as info:
        config.check(cfg)
    assert info.value.key == "compare.models"


@pytest.mark.parametrize("split", GROUPS["split"])
def test_every_split_gives_tune_and_compare_a_seed(split, tmp_path):
    cfg = make_config("tune", [f"output.dir={tmp_path}", f"split={split}"])
    assert isinstance(cfg.split.seed, int)
