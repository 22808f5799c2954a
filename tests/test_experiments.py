"""The experiment runner: steps cached under keys of their settings (a changed setting recomputes
exactly its dependants, a killed step is computed again, a finished one never), typed configs
with command-line overrides, and both papers' experiments end to end on tiny zoos."""

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from weightspace.cli import main
from weightspace.errors import ConfigError
from weightspace.experiments import Family, Step, load_experiment, register_family, run_steps
from weightspace.experiments.steps import RESULT_FILE, step_directory


# ---- the runner, with fake steps ----------------------------------------------------------
class Calls:
    """Fake steps that record when they compute: a, b <- a, c, d <- (b, c)."""

    def __init__(self):
        self.computed = []

    def step(self, name, settings, inputs=(), fail=False):
        def compute(context, settings):
            self.computed.append(name)
            (context.directory / "partial.txt").write_text("started")
            if fail:
                raise RuntimeError("killed")
            return {"value": settings["x"] + sum(context.input(i).result["value"] for i in inputs)}

        return Step(name, "fake", settings, compute, tuple(inputs))

    def steps(self, a=1, b=10, c=100, d=1000, fail=()):
        return [
            self.step("a", {"x": a}, fail="a" in fail),
            self.step("group/b", {"x": b}, ["a"], "group/b" in fail),
            self.step("c", {"x": c}, fail="c" in fail),
            self.step("d", {"x": d}, ["group/b", "c"], "d" in fail),
        ]


def statuses(records):
    return {r.name: r.status for r in records}


def test_a_changed_setting_recomputes_exactly_the_steps_that_depend_on_it(tmp_path):
    calls = Calls()
    first = run_steps(calls.steps(), tmp_path, progress=False)
    assert statuses(first) == dict.fromkeys(["a", "group/b", "c", "d"], "computed")
    assert json.loads((step_directory(tmp_path, "d", first[-1].key) / RESULT_FILE).read_text())["result"] == {
        "value": 1111
    }
    calls.computed.clear()
    again = run_steps(calls.steps(), tmp_path, progress=False)
    assert calls.computed == [] and set(statuses(again).values()) == {"reused"}
    assert [r.key for r in again] == [r.key for r in first]
    changed = run_steps(calls.steps(c=200), tmp_path, progress=False)
    assert calls.computed == ["c", "d"]
    assert statuses(changed) == {"a": "reused", "group/b": "reused", "c": "computed", "d": "computed"}
    assert [r.key == s.key for r, s in zip(changed, first)] == [True, True, False, False]
    calls.computed.clear()
    changed = run_steps(calls.steps(a=2), tmp_path, progress=False)  # a change travels through b to d
    assert calls.computed == ["a", "group/b", "d"]
    calls.computed.clear()
    back = run_steps(calls.steps(), tmp_path, progress=False)  # back to the first settings: all stored
    assert calls.computed == [] and [r.key for r in back] == [r.key for r in first]


def test_a_step_killed_midway_has_no_result_and_the_next_run_computes_it(tmp_path):
    calls = Calls()
    with pytest.raises(RuntimeError, match="killed"):
        run_steps(calls.steps(fail=("group/b",)), tmp_path, progress=False)
    assert calls.computed == ["a", "group/b"]
    killed = next((tmp_path / "steps" / "group" / "b").iterdir())
    assert (killed / "partial.txt").exists() and not (killed / RESULT_FILE).exists()
    calls.computed.clear()
    records = run_steps(calls.steps(), tmp_path, progress=False)
    assert calls.computed == ["group/b", "c", "d"]  # a finished before the kill: reused
    assert statuses(records)["a"] == "reused" and (killed / RESULT_FILE).exists()


def test_unfinished_steps_of_a_group_given_in_a_row_are_computed_together(tmp_path):
    """The seeds of one pretraining: computed in one call, each with its own key and result; a
    finished one is reused, a step reading one of them waits for the group."""
    together = []

    def seeds(names, x=1):
        def compute_together(items):
            together.append([settings["seed"] for settings, _ in items])
            return [{"value": settings["seed"] * x} for settings, _ in items]

        return [
            Step(
                name,
                "seed",
                {"seed": i, "x": x},
                lambda c, settings: {"value": settings["seed"] * x},
                group=f"seeds {x}",
                compute_together=compute_together,
            )
            for i, name in enumerate(names)
        ]

    reader = Step(
        "sum",
        "sum",
        {},
        lambda c, settings: {"value": sum(c.input(n).result["value"] for n in ("s0", "s1", "s2"))},
        ("s0", "s1", "s2"),
    )
    records = run_steps([*seeds(["s0", "s1", "s2"]), reader], tmp_path, progress=False)
    assert together == [[0, 1, 2]] and [r.name for r in records] == ["s0", "s1", "s2", "sum"]
    assert statuses(records) == dict.fromkeys(["s0", "s1", "s2", "sum"], "computed")
    assert records[-1] and json.loads((step_directory(tmp_path, "sum", records[-1].key) / RESULT_FILE).read_text())[
        "result"
    ] == {"value": 3}
    (step_directory(tmp_path, "s1", records[1].key) / RESULT_FILE).unlink()  # as if killed mid-way
    together.clear()
    again = run_steps([*seeds(["s0", "s1", "s2"]), reader], tmp_path, progress=False)
    assert together == [] and statuses(again)["s1"] == "computed" and statuses(again)["s0"] == "reused"
    run_steps(seeds(["t0", "t1"], x=2) + seeds(["u0", "u1"], x=3), tmp_path, progress=False)
    assert together == [[0, 1], [0, 1]]  # two groups, one call each

    from weightspace.experiments.steps import Results

    finished = Results()

    def generator():  # reads a grouped step's result before its group is over
        yield from seeds(["v0", "v1"], x=5)
        assert finished["v1"].result == {"value": 5}
        yield Step("after", "after", {}, lambda c, settings: {"value": 0})

    together.clear()
    run_steps(generator(), tmp_path, progress=False, finished=finished)
    assert together == [[0, 1]] and "after" in finished


def test_steps_can_depend_on_earlier_results_and_must_read_earlier_steps(tmp_path):
    calls = Calls()

    def generated(finished):
        yield calls.step("a", {"x": 3})
        for i in range(finished["a"].result["value"]):  # as many steps as a's result says
            yield calls.step(f"from-a/{i}", {"x": i}, ["a"])

    finished = {}
    assert len(run_steps(generated(finished), tmp_path, progress=False, finished=finished)) == 4
    with pytest.raises(ValueError, match="no earlier step"):
        run_steps([calls.step("d", {"x": 1}, ["nowhere"])], tmp_path, progress=False)
    with pytest.raises(ValueError, match="two steps"):
        run_steps([calls.step("a", {"x": 1}), calls.step("a", {"x": 2})], tmp_path, progress=False)


@dataclass(frozen=True, kw_only=True)
class CountingConfig:
    family: str = "counting"
    name: str
    seeds: tuple[int, ...] = (0,)
    results_dir: str = "results"
    scale: int = field(default=1, metadata={"help": "Multiplies every seed."})


class Counting(Family):
    """A family of fake steps: one per seed, and a total that reads them all."""

    name = "counting"

    def config(self, data, where):
        from weightspace.config import from_dict

        return from_dict(CountingConfig, data, where)

    def steps(self, config, finished):
        for seed in config.seeds:
            yield Step(
                f"times/seed-{seed}",
                "times",
                {"seed": seed, "scale": config.scale},
                lambda c, settings: {"value": settings["seed"] * settings["scale"]},
            )
        yield Step(
            "total",
            "total",
            {},
            lambda c, settings: {"value": sum(i.result["value"] for i in c.inputs.values())},
            tuple(f"times/seed-{s}" for s in config.seeds),
        )

    def results(self, config, finished, out):
        return {"total": finished["total"].result["value"]}

    def report(self, config, results, out):
        return [f"# {config.name}", "", f"total: {results['total']}", ""]


def test_a_registered_family_runs_from_a_file_and_its_report_lists_reused_and_computed_steps(tmp_path):
    register_family(Counting(), replace=True)
    (tmp_path / "count.toml").write_text('family = "counting"\nname = "count"\nseeds = [1, 2]\n')
    runner = CliRunner()
    args = ["run", str(tmp_path / "count.toml"), "--results-dir", str(tmp_path / "results"), "--quiet"]
    assert runner.invoke(main, args).exit_code == 0
    out = tmp_path / "results" / "count"
    assert "total: 3" in (out / "report.md").read_text()
    result = runner.invoke(main, args + ["--seeds", "2,3", "--set", "scale=10"])
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    assert "total: 50" in report
    steps = {
        line.split(" | ")[0][2:]: line.split(" | ")[2]
        for line in report.splitlines()
        if line.startswith("| ") and "`" in line
    }
    assert steps == {"times/seed-2": "computed", "times/seed-3": "computed", "total": "computed"}
    runner.invoke(main, args + ["--seeds", "2,3", "--set", "scale=10"])
    assert "3 steps: 0 computed" in (out / "report.md").read_text()
    (out / "report.md").unlink()
    assert runner.invoke(main, ["report", str(out)]).exit_code == 0 and "total: 50" in (out / "report.md").read_text()


# ---- configs and the command line -----------------------------------------------------------
#: configs that read a zoo the user imports first (tested on a fixture zoo below)
IMPORTING = {"small-cnn-zoo"}
SHIPPED = sorted(path.stem for path in Path("experiments").glob("*.toml") if path.stem not in IMPORTING)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_load_and_print_back_to_the_same_config(name, tmp_path):
    config = load_experiment(f"experiments/{name}.toml")
    result = CliRunner().invoke(main, ["run", f"experiments/{name}.toml", "--print-config"])
    assert result.exit_code == 0, result.output
    assert "# Results go to RESULTS_DIR/NAME." in result.output  # help comments
    (tmp_path / "printed.toml").write_text(result.output)
    assert load_experiment(tmp_path / "printed.toml") == config


def test_the_small_cnn_zoo_config_reads_the_zoo_the_user_imported(tmp_path):
    from test_zoo_import import _write_small_cnn_zoo

    result = CliRunner().invoke(main, ["run", "experiments/small-cnn-zoo.toml", "--print-config"])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "weightspace zoo import" in lines[0], result.output
    _write_small_cnn_zoo(tmp_path / "cifar10")
    imported = CliRunner().invoke(
        main, ["zoo", "import", "small-cnn-zoo", str(tmp_path / "cifar10"), "--out", str(tmp_path / "zoo"), "--quiet"]
    )
    assert imported.exit_code == 0, imported.output
    where = f'zoos.small-cnn-zoo.path="{tmp_path / "zoo"}"'
    result = CliRunner().invoke(main, ["run", "experiments/small-cnn-zoo.toml", "--set", where, "--print-config"])
    assert result.exit_code == 0, result.output
    assert tomllib.loads(result.output)["zoos"][0]["source_format"] == "small-cnn-zoo"


@pytest.mark.parametrize("name, family", [("demo", "representations"), ("cartpole-demo", "agent-embeddings")])
def test_the_command_line_wins_over_the_file_for_every_family(name, family, tmp_path):
    args = ["run", f"experiments/{name}.toml", "--seeds", "7,8", "--results-dir", str(tmp_path), "--print-config"]
    printed = tomllib.loads(CliRunner().invoke(main, args).output)
    assert printed["family"] == family and printed["seeds"] == [7, 8] and printed["results_dir"] == str(tmp_path)
    old_spelling = CliRunner().invoke(main, ["run", f"experiments/{name}.toml", "--results", "x", "--print-config"])
    assert tomllib.loads(old_spelling.output)["results_dir"] == "x"


def test_set_overrides_any_setting_as_a_toml_value(tmp_path):
    two_zoos = tmp_path / "two-zoos.toml"  # the demo with a second [[zoos]] table, picked by name
    demo = Path("experiments/demo.toml").read_text()
    at = demo.index("[pretrain]")
    two_zoos.write_text(demo[:at] + '[[zoos]]\nname = "digits"\nkind = "digits"\nmodels = 16\n\n' + demo[at:])
    config = load_experiment(
        two_zoos,
        assignments=[
            ("predictor.steps", 7),
            ("zoos.digits.models", 4),
            ("analyses.probing_ablation", {"lengths": [3]}),
        ],
    )
    assert config.predictor.steps == 7 and config.zoos[1].config.models == 4 and config.zoos[0].config.models == 32
    assert config.ablation.lengths == (3,) and config.ablation.probes == (1, 2, 4, 8, 16)
    result = CliRunner().invoke(
        main,
        [
            "run",
            "experiments/cartpole-demo.toml",
            "--set",
            "repair.algorithm.threshold=2",
            "--set",
            "zoo.models=64",
            "--set",
            "description=short",
            "--print-config",
        ],
    )
    printed = tomllib.loads(result.output)
    assert (
        printed["repair"]["algorithm"]["threshold"] == 2.0
        and printed["zoo"]["models"] == 64
        and printed["description"] == "short"
    )


BAD = [
    ('name = "x"\n[[zoos]]\nkind = "formal-languages"\nmodelz = 3\n', "unknown key(s) modelz"),
    ('name = "x"\n[[zoos]]\nkind = "digits"\nmodels = "many"\n', "models must be int"),
    ('name = "x"\nencoders = ["magic"]\n[[zoos]]\nkind = "digits"\n', "unknown encoders"),
    ('name = "x"\n', "at least one [[zoos]]"),
    ('name = "x"\n[[zoos]]\nkind = "formal-languages"\n[pretrain]\nstepz = 1\n', "stepz"),
    ('name = "x"\n[[zoos]]\nkind = "formal-languages"\n[predictor]\nsteps = 1.5\n', "steps must be int"),
    ('name = "x"\n[[zoos]]\nkind = "juggling"\n', "unknown task family 'juggling'"),
    ('family = "agent-embeddings"\nname = "x"\n[zoo]\nsamples = 3\n', "unknown key(s) samples"),
    ('family = "agent-embeddings"\nname = "x"\n[vae_training]\nepochs = "ten"\n', "epochs must be int"),
    ('family = "agent-embeddings"\nname = "x"\nsurprise = 1\n', "unknown key(s) surprise"),
    # library configs nest directly; what the experiment sets per step is refused in their tables
    ('name = "x"\n[[zoos]]\nkind = "digits"\n[pretrain]\nencoder = "dwsnet"\n', "[pretrain] encoder: set per step"),
    ('family = "agent-embeddings"\nname = "x"\n[vae]\ninput_size = 3\n', "[vae] input_size: set per step"),
    ('family = "agent-embeddings"\nname = "x"\n[vae_training]\nseed = 3\n', "[vae_training] seed: set per step"),
    # an older layout's key says where it went
    ('name = "x"\n[[zoos]]\nkind = "digits"\n[supervised]\ntargets = "all"\n', "[supervised] targets has moved to"),
    ('family = "agent-embeddings"\nname = "x"\n[vae]\nepochs = 3\n', "[vae] epochs has moved to [vae_training]"),
    ('family = "agent-embeddings"\nname = "x"\n[repair]\nkeep = 3\n', "[repair] keep has moved to [repair.algorithm]"),
    ('family = "poetry"\nname = "x"\n', "unknown experiment family 'poetry'"),
    ("name = [", "not valid TOML"),
    ('name = "x"\nseeds = 3\n[[zoos]]\nkind = "digits"\n', "seeds must be a list of int, got int 3"),
    ('name = "x"\n[[zoos]]\nkind = "formal-languages"\ncheckpoints = 5\n', "checkpoints must be a list of int"),
]


@pytest.mark.parametrize("text, message", BAD)
def test_config_errors_are_one_line_with_exit_code_2(tmp_path, text, message):
    file = tmp_path / "bad.toml"
    file.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_experiment(file)
    assert message in str(error.value)
    result = CliRunner().invoke(main, ["run", str(file)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["run", "no/such/file.toml"],
        ["run", "experiments/demo.toml", "--set", "oops"],
        ["run", "experiments/demo.toml", "--set", "zoos.nope.models=3"],
        ["run", "experiments/demo.toml", "--set", "analyses.probing_ablation.lengths=[3]"],
        ["report", "no/such/results"],
    ],
)
def test_command_line_mistakes_are_one_line_with_exit_code_2(args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr


# ---- paper 000, end to end on a tiny zoo ----------------------------------------------------
TINY = """
name = "tiny"
seeds = [5]
encoders = ["statistics", "probing"]
supervised_targets = ["task"]
results_dir = "not-here"

[[zoos]]
name = "fl"
kind = "formal-languages"
models = 8
population = 8
steps = 20
checkpoints = [0, 20]
samples = 40
rollouts = 8
hidden_size = 8
seed = 1

[pretrain]
steps = 8
batch_size = 8
rollouts_per_network = 2
val_rollouts = 2
eval_every = 4
emulator_hidden = 16

[predictor]
steps = 40
eval_every = 10

[supervised]
steps = 6
eval_every = 3

[encoder_options]
statistics = {{ hidden = 16 }}
probing = {{ probes = 2, reader_hidden = 8, mlp_hidden = 8 }}

[analyses]
fidelity_samples = 5
probing_ablation = {{ encoder = "probing", probes = [1, 2], lengths = [], steps = 4, eval_every = 2 }}
"""


def run_cli(*args):
    result = CliRunner().invoke(main, ["run", *map(str, args), "--quiet"])
    assert result.exit_code == 0, result.output
    return result


def last_run(out) -> dict:
    return {s["name"]: s["status"] for s in json.loads((out / "run.json").read_text())["steps"]}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """The tiny experiment, run from the command line, which overrides the file's seeds and results."""
    root = tmp_path_factory.mktemp("experiment")
    config_file = root / "tiny.toml"
    config_file.write_text(TINY.format())
    run_cli(config_file, "--seeds", "0,1", "--results-dir", root / "results")
    return config_file, root / "results" / "tiny"


def test_report_has_the_task_table_with_intervals_and_figures(experiment):
    config_file, out = experiment
    report = (out / "report.md").read_text()
    assert not (config_file.parent / "not-here").exists()
    assert "### task: exact accuracy (higher is better)" in report
    assert "| statistics |" in report and "| probing |" in report
    emulation = report.split("### Emulation: did the encoders learn? (fl)")[1].split("###")[0]
    assert "paper, Table 2 |" in emulation and " 0.051 |" in emulation and " 0.023 |" in emulation
    assert "| *constant floor* |" in emulation and "| *oracle ceiling* |" in emulation
    assert "[" in report.split("### task")[1].split("\n\n")[1]  # intervals over the two seeds
    assert (out / "figures" / "fl" / "prediction-task.png").stat().st_size > 1000
    results = json.loads((out / "results.json").read_text())
    figures = results["zoos"]["fl"]["figures"]
    for analysis, figure in [
        ("invariance", "invariance-untrained.png"),
        ("invariance", "invariance-trained.png"),
        ("embeddings", "embedding-statistics.png"),
        ("fidelity", "fidelity-probing.png"),
        ("probes", "probes-probing.png"),
        ("probing_ablation", "ablation-probes.png"),
    ]:
        assert (out / figures[analysis] / figure).stat().st_size > 1000, figure
        assert f"{figures[analysis]}/{figure}" in report
    rows = [r for r in results["rows"] if r["target"] == "task" and r["metric"] == "exact_accuracy"]
    assert {(r["encoder"], r["mode"]) for r in rows} == {
        (e, m) for e in ("statistics", "probing") for m in ("pretrained", "supervised")
    }
    assert all(r["low"] <= r["mean"] <= r["high"] and r["seeds"] == 2 for r in rows)
    assert "table 11" in report and (out / "table.csv").exists()
    matrix = results["zoos"]["fl"]["analyses"]["invariance"]["untrained"]["matrix"]
    assert matrix["statistics"]["rows_only"] < 1e-4 and matrix["subject network"]["rows_only"] > 1e-2
    assert "## Steps of the last run" in report and "| pretrain/fl/probing/seed-1 |" in report
    assert set(last_run(out).values()) == {"computed"}


def test_a_changed_predictor_setting_recomputes_exactly_the_predictions(experiment):
    config_file, out = experiment
    base = [config_file, "--seeds", "0,1", "--results-dir", out.parent]
    before = json.loads((out / "results.json").read_text())
    run_cli(*base, "--set", "predictor.steps=20", "--set", "predictor.eval_every=5")
    statuses = last_run(out)
    computed = {name for name, status in statuses.items() if status == "computed"}
    assert computed == {
        f"predict/fl/{e}/seed-{s}/{t}"
        for e in ("statistics", "probing")
        for s in (0, 1)
        for t in ("task", "performance")
    }
    assert any(name.startswith("pretrain/fl/probing/seed") for name in statuses)  # pretraining was reused
    reasons = {s["reason"] for s in json.loads((out / "run.json").read_text())["steps"] if s["status"] == "computed"}
    assert reasons == {"settings changed"}
    after = json.loads((out / "results.json").read_text())
    seeds = after["zoos"]["fl"]["encoders"]["statistics"]
    assert [s["predictions"]["pretrained/task"]["training"]["steps"] for s in seeds] != [
        s["predictions"]["pretrained/task"]["training"]["steps"] for s in before["zoos"]["fl"]["encoders"]["statistics"]
    ]
    assert (
        after["zoos"]["fl"]["encoders"]["statistics"][0]["predictions"]["supervised/task"]
        == before["zoos"]["fl"]["encoders"]["statistics"][0]["predictions"]["supervised/task"]
    )
    report = (out / "report.md").read_text()
    new_row = next(
        r
        for r in after["rows"]
        if r["encoder"] == "statistics"
        and r["mode"] == "pretrained"
        and r["target"] == "performance"
        and r["split"] == "val"
        and r["metric"] == "mse"
    )
    assert f"{new_row['mean']:.3f} [" in report
    run_cli(*base)  # back to the file's settings: every step is stored
    assert set(last_run(out).values()) == {"reused"}
    assert json.loads((out / "results.json").read_text())["rows"] == before["rows"]


def test_recompute_computes_the_matching_steps_afresh(experiment):
    config_file, out = experiment
    before = json.loads((out / "results.json").read_text())
    run_cli(config_file, "--seeds", "0,1", "--results-dir", out.parent, "--recompute", "embed/fl/statistics/*")
    steps = json.loads((out / "run.json").read_text())["steps"]
    computed = {s["name"]: s["reason"] for s in steps if s["status"] == "computed"}
    assert computed == {f"embed/fl/statistics/seed-{s}": "asked" for s in (0, 1)}  # the same embeddings again:
    assert json.loads((out / "results.json").read_text())["rows"] == before["rows"]  # nothing after them recomputed


def test_report_rebuilds_from_the_results_directory(experiment):
    _, out = experiment
    text = (out / "report.md").read_text()
    (out / "report.md").unlink()
    result = CliRunner().invoke(main, ["report", str(out)])
    assert result.exit_code == 0 and (out / "report.md").read_text() == text


@pytest.mark.parametrize("damage", ["a result the report reads", "a renamed setting", "a result, this version"])
def test_a_report_of_results_from_an_older_version_is_one_line(experiment, tmp_path, damage):
    """Issue 27: results a previous release wrote (no version in run.json), which today's report
    cannot read, give one line naming the versions and how to recompute; never a traceback."""
    import shutil

    _, out = experiment
    old = tmp_path / "old"
    shutil.copytree(out, old)
    run = json.loads((old / "run.json").read_text())
    assert run["weightspace"]  # the results say which version wrote them
    if damage != "a result, this version":
        run.pop("weightspace")
    (old / "run.json").write_text(json.dumps(run))
    if damage in ("a result the report reads", "a result, this version"):
        results = json.loads((old / "results.json").read_text())
        results.pop("rows")
        (old / "results.json").write_text(json.dumps(results))
    else:
        experiment_data = json.loads((old / "experiment.json").read_text())
        experiment_data["pretraining"] = experiment_data.pop("pretrain")
        (old / "experiment.json").write_text(json.dumps(experiment_data))
    result = CliRunner().invoke(main, ["report", str(old)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    writer = "weightspace " + run["weightspace"] if damage == "a result, this version" else "an earlier weightspace"
    assert len(lines) == 1 and f"written by {writer}" in lines[0] and "weightspace run" in lines[0], lines


def test_a_published_report_is_self_contained(experiment, tmp_path):
    _, out = experiment
    result = CliRunner().invoke(main, ["report", str(out), "--publish", str(tmp_path / "docs")])
    assert result.exit_code == 0, result.output
    published = (tmp_path / "docs" / "report.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", published)
    assert len(images) >= 8 and all(p.startswith("figures/") for p in images)
    assert all((tmp_path / "docs" / p).stat().st_size > 1000 for p in images)
    assert "figures/invariance-fl-invariance-trained.png" in images


# ---- paper 004, end to end on a tiny zoo ----------------------------------------------------
AGENTS = """
family = "agent-embeddings"
name = "cartpole-test"
seeds = [0]
results_dir = "not-here"
[zoo]
models = 24
steps = 900
population = 24
checkpoints = [0, 900]
test_episodes = 8
stored_episodes = 2
seed = 1
[vae]
hidden_size = 32
[vae_training]
epochs = 2
[table1]
generated = 6
[convergence]
reference_states = 300
networks = 3
[interpolation]
pairs = 2
points = 4
[repair]
levels = [0.0, 1.0]
[repair.algorithm]
candidates = 6
keep = 2
"""


def test_agent_embeddings_run_end_to_end_and_reuse_finished_steps(tmp_path):
    (tmp_path / "exp.toml").write_text(AGENTS)
    args = [tmp_path / "exp.toml", "--seeds", "3", "--results-dir", tmp_path / "results"]
    run_cli(*args)
    out = tmp_path / "results" / "cartpole-test"
    text = (out / "report.md").read_text()
    for heading in ("Table 1", "Table 2", "Figure 7", "Figure 8", "Steps of the last run"):
        assert heading in text
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == [3] and not (tmp_path / "not-here").exists()
    for figure in ("figure4", "figure5", "figure6", "figure7", "figure8"):
        assert (out / results["figures"][figure]).stat().st_size > 1000
        assert "/seed-3/" in results["figures"][figure] and results["figures"][figure] in text
    assert [row["group"] for row in results["table1"]] == ["1-50", "51-100", "101-150", "151-200", "combined"]
    assert set(results["table2"]) == {"good", "bad"}
    assert "| vae/conditional/seed-3 |" in text
    run_cli(*args)
    assert set(last_run(out).values()) == {"reused"}
    run_cli(*args, "--set", "repair.algorithm.keep=3")  # only the repair is redone
    assert {n for n, s in last_run(out).items() if s == "computed"} == {"repair/seed-3"}
    assert json.loads((out / "results.json").read_text())["repair"]["config"]["keep"] == 3


def test_executor_ray_without_ray_installed_is_one_line(monkeypatch, tmp_path):
    """Ray is optional: asking for it without it installed says how to get it, in one line."""
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails as if not installed
    result = CliRunner().invoke(
        main, ["run", "experiments/demo.toml", "--executor", "ray", "--results-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["error: --executor ray needs Ray: pip install 'weightspace[ray]'"]
