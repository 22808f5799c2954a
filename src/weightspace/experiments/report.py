"""The shared report writer: a family's template (its tables and figures, from results.json)
followed by the steps of the last run, which were reused and which computed, with seconds.
``weightspace report DIR`` re-renders a report from the files a run left in DIR."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd

from .. import storage
from ..errors import ConfigError
from ..versions import weightspace_version
from .config import family_name
from .family import get_family

EXPERIMENT_FILE = "experiment.json"
RUN_FILE = "run.json"
RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"


def write_report(out) -> Path:
    """(Re)write ``out/report.md`` (and the family's figures and tables) from the last run's files."""
    out = Path(out)
    files = {}
    for name in (EXPERIMENT_FILE, RUN_FILE, RESULTS_FILE):
        if not (out / name).exists():
            raise ConfigError(f"{out} has no {name}: run the experiment first (weightspace run CONFIG)")
        files[name] = json.loads((out / name).read_text())
    data = files[EXPERIMENT_FILE]
    written_by = files[RUN_FILE].get("weightspace")
    try:
        family = get_family(family_name(data))
        config = family.config(data, str(out / EXPERIMENT_FILE))
        lines = family.report(config, files[RESULTS_FILE], out)
        lines += steps_section(files[RUN_FILE])
    except (ConfigError, KeyError, IndexError, TypeError, ValueError) as error:
        if isinstance(error, ConfigError) and written_by == weightspace_version():
            raise
        # results this version's report cannot read (issue 27): one line, never a traceback
        origin = f"weightspace {written_by}" if written_by else "an earlier weightspace (its run.json names no version)"
        raise ConfigError(
            f"{out} was written by {origin} and this report ({weightspace_version()}) cannot read it "
            f"({type(error).__name__}: {error}); recompute it with `weightspace run CONFIG` (finished steps "
            "are reused where their settings and code are unchanged)"
        ) from None
    storage.write_text(out / REPORT_FILE, "\n".join(lines))
    return out / REPORT_FILE


_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
_STEP_KEY = re.compile(r"^[0-9a-f]{16}$")


def publish_report(out, destination) -> Path:
    """Copy ``out/report.md`` and every image it shows into ``destination`` (a self-contained folder
    to commit or share): images under ``figures/`` keep their paths, images inside step folders
    move to ``figures/`` under the step's name. Returns the copied report."""
    out, destination = Path(out), Path(destination)
    if not (out / REPORT_FILE).exists():
        raise ConfigError(f"{out} has no {REPORT_FILE}: run the experiment first (weightspace run CONFIG)")
    copied = {}

    def relocate(match):
        label, path = match.groups()
        if "://" in path or not (out / path).is_file():
            return match.group(0)
        parts = Path(path).parts
        target = (
            path
            if parts[0] == "figures"
            else "figures/" + "-".join(p for p in parts[1:-1] if not _STEP_KEY.match(p)) + "-" + parts[-1]
        )
        copied[target] = out / path
        return f"![{label}]({target})"

    text = _IMAGE.sub(relocate, (out / REPORT_FILE).read_text())
    for target, source in copied.items():
        (destination / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination / target)
    storage.write_text(destination / REPORT_FILE, text)
    return destination / REPORT_FILE


def steps_section(run: dict) -> list[str]:
    """Which steps the last run reused and which it computed, with seconds."""
    steps = run["steps"]
    computed = [s for s in steps if s["status"] == "computed"]
    lines = [
        "## Steps of the last run",
        "",
        f"{len(steps)} steps: {len(computed)} computed ({sum(s['seconds'] for s in computed):.1f} s), "
        f"{len(steps) - len(computed)} reused; the run took {run['seconds']:.1f} s. A step is reused when "
        "`steps/STEP/KEY/` holds its finished result; KEY hashes the step's settings, the keys of the steps "
        "it reads and the source of the code it runs, so a changed setting or source file recomputes exactly the "
        "steps that depend on it. Seconds: computing the step (for a reused step, in the run that computed it).",
        "",
        "| step | key | this run | why computed | seconds |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {s['name']} | `{s['key']}` | {s['status']} | {s.get('reason', '')} | {s['seconds']:.1f} |" for s in steps
    ]
    return lines + [""]


def markdown(frame: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (floats to 3 decimals, NaN as "undefined")."""

    def text(value):
        if isinstance(value, float):
            return "undefined" if value != value else f"{value:.3f}"
        return str(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(text(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)
