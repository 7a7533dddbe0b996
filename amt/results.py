"""A study's results: every job of a multirun gathered into one table and one figure.

:class:`AggregateResults` is a Hydra callback (``hydra.callbacks`` in conf/sweep.yaml). When a
multirun ends it reads each job folder of the sweep (``.hydra/overrides.yaml`` and the
``metrics.json`` that train.py writes, or the ``failed.txt`` that sweep.py leaves) and writes, in
the sweep folder:

* ``results.csv``: one row per job (status, setting, seed, metrics, error),
* ``results.md``: one row per setting, mean ± standard deviation over its seeds, failed jobs counted,
* ``results.png``: AP per setting (against the swept value when it is a number) and the mean
  validation AP curve of each setting,
* ``search.png``, when more than one setting is swept (an Optuna search): the objective trial by
  trial with the best so far, and the objective against each swept setting,

and logs the table and the figure to W&B as one run of the sweep's group. Jobs are those whose
folder Hydra (re)wrote during this multirun, so a folder left from an older, larger sweep under
the same name is not counted.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from hydra.experimental.callback import Callback  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from amt.files import write_atomically  # noqa: E402
from amt.jobs import FAILURE_FILE, METRICS_FILE, seed_of, setting_of  # noqa: E402

log = logging.getLogger(__name__)

COLUMNS = ("train/ap", "best/val_ap", "test/ap", "val/loss", "epochs", "wall_time_s")
HEADINGS = {
    "train/ap": "train AP",
    "best/val_ap": "val AP (best)",
    "test/ap": "test AP",
    "val/loss": "val loss",
    "epochs": "epochs",
    "wall_time_s": "wall s",
}


@dataclass
class JobResult:
    job: str
    overrides: list[str]
    seed: int
    status: str  # "done" or "failed"
    metrics: dict = field(default_factory=dict)
    error: str = ""
    setting: str = "default"
    """The overrides that tell this job's setting from the others' (see :func:`collect_jobs`)."""


def _read_job(folder: Path, default_seed: int) -> JobResult:
    overrides = [str(o) for o in OmegaConf.load(folder / ".hydra" / "overrides.yaml")]
    seed = seed_of(overrides, default_seed)
    metrics_file, failure_file = folder / METRICS_FILE, folder / FAILURE_FILE
    if metrics_file.is_file():
        return JobResult(folder.name, overrides, seed, "done", json.loads(metrics_file.read_text()))
    if failure_file.is_file():
        return JobResult(folder.name, overrides, seed, "failed", error=failure_file.read_text().strip())
    return JobResult(folder.name, overrides, seed, "failed", error=f"no {METRICS_FILE}: the job was killed")


def collect_jobs(sweep_dir: Path, since: float | None = None, default_seed: int = 0) -> list[JobResult]:
    """Every job folder of ``sweep_dir`` (those Hydra wrote at or after ``since``, a ``time.time()``).

    A job's setting is what sets it apart: its overrides minus the seed and minus those all jobs share.
    """
    jobs = []
    for overrides in sweep_dir.glob("*/.hydra/overrides.yaml"):
        if since is not None and overrides.stat().st_mtime < since:
            continue
        jobs.append(_read_job(overrides.parent.parent, default_seed))
    # Overrides every job shares (data.preset=tiny, logger=csv, ...) say nothing about the setting.
    shared = set.intersection(*(set(job.overrides) for job in jobs)) if jobs else set()
    for job in jobs:
        job.setting = setting_of([override for override in job.overrides if override not in shared])
    return sorted(jobs, key=lambda job: (int(job.job) if job.job.isdigit() else math.inf, job.job))


def _mean_std(values: Sequence[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g}"


LONG_NUMBER = re.compile(r"(?<==)(-?\d+\.\d{5,}(?:[eE]-?\d+)?|-?\d\.\d+[eE]-?\d+)")
"""A number in a setting with more digits than a reader needs (Optuna draws 17 of them)."""


def readable(setting: str) -> str:
    """A setting for people: ``optimizer.lr=0.00012345678901234`` → ``optimizer.lr=0.0001235``."""
    return LONG_NUMBER.sub(lambda match: f"{float(match.group(1)):.4g}", setting)


def by_setting(jobs: Sequence[JobResult]) -> dict[str, list[JobResult]]:
    groups: dict[str, list[JobResult]] = defaultdict(list)
    for job in jobs:
        groups[job.setting].append(job)
    return dict(groups)


def summary_markdown(jobs: Sequence[JobResult], title: str) -> str:
    """One row per setting: seeds that finished, failures, and mean ± std of each metric."""
    failed = sum(job.status == "failed" for job in jobs)
    lines = [
        f"# {title}",
        "",
        f"{len(jobs)} jobs, {failed} failed; mean ± standard deviation over seeds.",
        "",
        "| setting | seeds | failed | " + " | ".join(HEADINGS[c] for c in COLUMNS) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in COLUMNS) + " |",
    ]
    for setting, group in by_setting(jobs).items():
        done = [job for job in group if job.status == "done"]
        cells = [_mean_std([float(job.metrics[c]) for job in done if c in job.metrics]) for c in COLUMNS]
        seeds = ",".join(str(job.seed) for job in done) or "–"
        lines.append(f"| {readable(setting)} | {seeds} | {len(group) - len(done)} | " + " | ".join(cells) + " |")
    errors = [job for job in jobs if job.status == "failed"]
    if errors:
        lines += ["", "Failed jobs:", ""] + [
            f"- job {job.job} ({' '.join(job.overrides)}): {job.error}" for job in errors
        ]
    return "\n".join(lines) + "\n"


def write_csv(jobs: Sequence[JobResult], path: Path) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["job", "status", "setting", "seed", *COLUMNS, "test/loss", "error"])
            for job in jobs:
                values = [job.metrics.get(c, "") for c in (*COLUMNS, "test/loss")]
                writer.writerow([job.job, job.status, job.setting, job.seed, *values, job.error])

    write_atomically(path, ".csv", write)


def _numeric_axis(settings: Sequence[str]) -> tuple[str, list[float]] | None:
    """The swept key and its values when every setting is one ``key=number`` of the same key."""
    pairs = [setting.partition("=") for setting in settings]
    if not pairs or len({key for key, _, _ in pairs}) != 1 or any(" " in s for s in settings):
        return None
    try:
        return pairs[0][0], [float(value) for _, _, value in pairs]
    except ValueError:
        return None


MAX_LEGEND = 12
"""Settings named in the curves' legend; a search with more trials shows its curves unlabelled."""


def plot_results(jobs: Sequence[JobResult], path: Path, title: str) -> None:
    """AP per setting (mean ± std over seeds) and each setting's mean validation AP per epoch."""
    groups = {s: [j for j in g if j.status == "done"] for s, g in by_setting(jobs).items()}
    groups = {s: g for s, g in groups.items() if g}
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 4.2))
    settings = list(groups)
    numeric = _numeric_axis(settings)
    order = sorted(range(len(settings)), key=lambda i: numeric[1][i]) if numeric else range(len(settings))
    positions = [numeric[1][i] for i in order] if numeric else list(range(len(settings)))
    for metric, marker in (("best/val_ap", "o"), ("test/ap", "s")):
        values = [[float(j.metrics[metric]) for j in groups[settings[i]] if metric in j.metrics] for i in order]
        means = [statistics.mean(v) if v else math.nan for v in values]
        stds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
        left.errorbar(positions, means, yerr=stds, marker=marker, capsize=4, label=HEADINGS[metric])
    if numeric:
        left.set_xlabel(numeric[0])
    else:
        left.set_xticks(positions, [readable(settings[i]) for i in order], rotation=20, ha="right", fontsize=8)
    left.set_ylabel("micro average precision")
    left.grid(alpha=0.3)
    left.legend()
    for setting in settings:
        curves = [[row.get("val/ap", math.nan) for row in j.metrics.get("history", [])] for j in groups[setting]]
        length = min((len(c) for c in curves), default=0)
        if length:
            mean = [statistics.mean(c[e] for c in curves) for e in range(length)]
            right.plot(range(1, length + 1), mean, "-o", markersize=3, label=readable(setting))
    right.set_xlabel("epoch")
    right.set_ylabel("val AP (mean over seeds)")
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.grid(alpha=0.3)
    if 0 < len(settings) <= MAX_LEGEND:
        right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)  # beside, not over
    figure.suptitle(title)
    figure.tight_layout()
    write_atomically(path, ".png", lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    plt.close(figure)


def swept_values(job: JobResult) -> dict[str, str]:
    """The job's setting as ``{key: value}``: ``model.dropout=0.3 optimizer.lr=0.001`` → two entries."""
    return dict(part.split("=", 1) for part in job.setting.split() if "=" in part)


def _numbers(values: Sequence[str]) -> list[float] | None:
    try:
        return [float(value) for value in values]
    except ValueError:
        return None


def plot_search(jobs: Sequence[JobResult], path: Path, title: str, objective: str = "best/val_ap") -> None:
    """The objective trial by trial (with the best so far), then against each swept setting: a number
    on its own axis (logarithmic when it spans more than a factor of 10), a choice by its names."""
    done = [job for job in jobs if job.status == "done" and objective in job.metrics]
    keys = sorted({key for job in done for key in swept_values(job)})
    figure, axes = plt.subplots(1, 1 + len(keys), figsize=(4.2 * (1 + len(keys)), 3.8), squeeze=False, sharey=True)
    scores = [float(job.metrics[objective]) for job in done]
    trials = range(1, len(done) + 1)
    history = axes[0][0]
    history.plot(trials, scores, "o", color="#0072B2", label="trial")
    history.step(trials, [max(scores[: i + 1]) for i in range(len(scores))], where="post", color="#D55E00",
                 label="best so far")  # fmt: skip
    history.set_xlabel("trial")
    history.set_ylabel(HEADINGS.get(objective, objective))
    history.xaxis.set_major_locator(MaxNLocator(integer=True))
    history.legend(fontsize=8)
    for axis, key in zip(axes[0][1:], keys, strict=True):
        present = [(swept_values(job)[key], score) for job, score in zip(done, scores, strict=True)
                   if key in swept_values(job)]  # fmt: skip
        numbers = _numbers([value for value, _ in present])
        if numbers is not None:
            axis.plot(numbers, [score for _, score in present], "o", color="#0072B2")
            if min(numbers) > 0 and max(numbers) > 10 * min(numbers):
                axis.set_xscale("log")
        else:
            names = sorted({value for value, _ in present})
            axis.plot([names.index(value) for value, _ in present], [score for _, score in present], "o")
            axis.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
        axis.set_xlabel(key)
    for axis in axes[0]:
        axis.grid(alpha=0.3)
    figure.suptitle(f"{title}: {len(done)} trials")
    figure.tight_layout()
    write_atomically(path, ".png", lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    plt.close(figure)


def write_results(jobs: Sequence[JobResult], sweep_dir: Path, title: str) -> dict[str, Path]:
    paths = {"csv": sweep_dir / "results.csv", "md": sweep_dir / "results.md", "png": sweep_dir / "results.png"}
    write_csv(jobs, paths["csv"])
    markdown = summary_markdown(jobs, title)
    write_atomically(paths["md"], ".md", lambda tmp: Path(tmp).write_text(markdown))
    plot_results(jobs, paths["png"], title)
    if len({key for job in jobs for key in swept_values(job)}) > 1:
        paths["search"] = sweep_dir / "search.png"
        plot_search(jobs, paths["search"], title)
    return paths


def log_to_wandb(jobs: Sequence[JobResult], paths: dict[str, Path], config: DictConfig) -> None:
    """The per-job table and the figure as one W&B run in the sweep's group (offline unless logged in)."""
    import wandb

    from amt.loggers import wandb_offline

    node = OmegaConf.select(config, "logger.wandb")
    mode = "offline" if wandb_offline(node.get("offline")) else "online"
    run = wandb.init(
        project=node.get("project"),
        group=config.sweep.name,
        job_type="study-results",
        name=f"{config.sweep.name}-results",
        tags=[f"study:{config.sweep.study}", f"scale:{config.sweep.scale}"],
        dir=str(paths["csv"].parent),
        mode=mode,
        reinit="create_new",
    )
    columns = ["job", "status", "setting", "seed", *COLUMNS, "error"]
    rows = [[j.job, j.status, j.setting, j.seed, *(j.metrics.get(c) for c in COLUMNS), j.error] for j in jobs]
    plots = {"results_plot": "png", "search_plot": "search"}
    images = {key: wandb.Image(str(paths[name])) for key, name in plots.items() if name in paths}
    run.log({"results": wandb.Table(columns=columns, data=rows), **images})
    run.finish()


class AggregateResults(Callback):
    """Hydra callback: at the end of a multirun, the study's table, figure and W&B summary."""

    def __init__(self) -> None:
        self.started: float | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self.started = time.time() - 1.0  # file times may be rounded down

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = collect_jobs(sweep_dir, self.started, default_seed=int(config.get("seed", 0)))
        title = f"study {config.sweep.study}, scale {config.sweep.scale}"
        paths = write_results(jobs, sweep_dir, title)
        log.info("results of %d jobs: %s", len(jobs), ", ".join(str(p) for p in paths.values()))
        if OmegaConf.select(config, "logger.wandb") is not None:
            log_to_wandb(jobs, paths, config)
        failed = [job.job for job in jobs if job.status == "failed"]
        if failed:
            # SystemExit, not an exception: Hydra turns exceptions from callbacks into warnings and exits 0.
            print(
                f"amt: error: {len(failed)} of {len(jobs)} jobs failed (jobs {', '.join(failed)}); see {paths['md']}",
                file=sys.stderr,
            )
            raise SystemExit(1)
