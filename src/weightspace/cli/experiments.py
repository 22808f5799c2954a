"""``weightspace run`` and ``weightspace report``: the experiment runner of every paper."""

from __future__ import annotations

import click

from .._click_types import int_list
from .options import device_option, executor_options, make_executor


@click.command("run")
@click.argument("config_file", type=click.Path())
@click.option("--seeds", callback=int_list, metavar="0,1,...", help="Overrides the config's seeds.")
@click.option(
    "--results-dir",
    "--results",
    "results_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Overrides the config's results directory [default: results].",
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help='Overrides one setting; the value is read as TOML (3, 1e-3, true, [0, 1], "text"). '
    "Pick a [[zoos]] table by name: --set zoos.digits.models=64. Repeatable.",
)
@click.option(
    "--print-config",
    is_flag=True,
    help="Print the resolved config (every default, each field's help as a comment) as TOML and exit.",
)
@click.option(
    "--recompute",
    multiple=True,
    metavar="PATTERN",
    help="Compute the steps whose names match (shell pattern: 'predict/*', 'pretrain/fl/probing/*') afresh, "
    "whatever their cache holds. Repeatable.",
)
@click.option("--device", default="cpu", show_default=True, callback=device_option)
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.pass_context
def run_command(
    ctx, config_file, seeds, results_dir, assignments, print_config, recompute, device, quiet, executor, address
):
    """Run the experiment in CONFIG_FILE (TOML) end to end and write RESULTS/NAME/report.md.

    Every step's output is cached under a key of its settings, its inputs and the code it runs: a
    rerun reuses finished steps, a changed setting or a changed source file recomputes exactly the
    steps that depend on it (the report says which and why), and a killed run resumes. The command line wins over the file. The file's top-level `family` picks the
    pipeline: representations (paper 000; the default), tipl (papers 001/003), degeneracy
    (paper 002) or agent-embeddings (paper 004); a family an installed package registers too.
    """
    from ..experiments import config_toml, load_experiment, run_experiment
    from ..experiments.config import parse_assignment

    config = load_experiment(config_file, seeds, results_dir, [parse_assignment(a) for a in assignments])
    if print_config:
        click.echo(
            config_toml(config, f"{config_file}, resolved: the file, the command line's overrides and every default"),
            nl=False,
        )
        return
    threads = (ctx.obj or {}).get("threads")
    runner = make_executor(executor, address)
    report = run_experiment(
        config, device=device, progress=not quiet, threads=threads, executor=runner, recompute=recompute
    )
    click.echo(f"report: {report}")


run_command.params.extend(executor_options("the steps as Ray tasks, as many at once as the cluster allows"))


@click.command("report")
@click.argument("run_dir", type=click.Path())
@click.option(
    "--publish",
    type=click.Path(file_okay=False),
    default=None,
    help="Also copy the report and every image it shows into this folder (self-contained, to commit).",
)
def report_command(run_dir, publish):
    """Rebuild RUN_DIR/report.md (and its tables and figures) from the files the last run left there."""
    from ..experiments.report import publish_report, write_report

    click.echo(f"report: {write_report(run_dir)}")
    if publish:
        click.echo(f"published: {publish_report(run_dir, publish)}")
