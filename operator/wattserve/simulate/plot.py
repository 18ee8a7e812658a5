"""PNG plot of a run (or several): load, replicas and p95 latency over time.

matplotlib is optional (extra ``sim``) and imported lazily. The file's extension picks the
format (any matplotlib writes: .png, .svg, .pdf, ...); a name without one gets ``.png``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from wattserve.simulate.engine import SimResult
from wattserve.simulate.report import percentile


def minute_series(result: SimResult, bucket_s: float = 60.0, ttft: bool = False
                  ) -> tuple[list[float], list[float], list[float]]:
    """(minute starts in minutes, arrivals/s, p95 latency or TTFT s) per arrival minute."""
    buckets: dict[int, list[float]] = {}
    for r in result.requests:
        value = (r.first_token if ttft else r.finish) - r.arrival
        buckets.setdefault(int(r.arrival // bucket_s), []).append(value)
    keys = sorted(buckets)
    xs = [k * bucket_s / 60.0 for k in keys]
    rate = [len(buckets[k]) / bucket_s for k in keys]
    p95 = [percentile(sorted(buckets[k]), 0.95) for k in keys]
    return xs, rate, p95


def plot_path(out: str | Path) -> Path:
    """The file :func:`plot_runs` writes for ``out``, checked before a run: a format
    matplotlib writes (``.png`` added to a name without an extension), in a folder that
    exists or can be made, and that takes files. ``ValueError`` in one line if not."""
    from matplotlib.backend_bases import FigureCanvasBase

    path = Path(out)
    if path.is_dir():
        raise ValueError("is a directory: name the file")
    if not path.suffix:
        path = path.with_name(path.name + ".png")
    formats = FigureCanvasBase.get_supported_filetypes()
    if path.suffix[1:].lower() not in formats:
        raise ValueError(f"{path.suffix!r} is not an image format matplotlib writes; use "
                         f"one of {', '.join('.' + f for f in sorted(formats))}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # the folder made first
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a directory")
    try:  # os.access says yes to root whatever the file system (/proc, a read-only mount)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ValueError(f"cannot write a file in {folder} ({exc.strerror or exc})") from None
    return path


def plot_runs(results: Sequence[SimResult], slo_s: float, out: str | Path, title: str = "",
              ttft_slo_s: float | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = 4 if ttft_slo_s is not None else 3
    fig, axes = plt.subplots(rows, 1, figsize=(10, 2.6 * rows + 0.4), sharex=True)
    ax_load, ax_rep, ax_lat = axes[0], axes[1], axes[2]
    if results:
        xs, rate, _ = minute_series(results[0])
        ax_load.plot(xs, rate, color="black", linewidth=1)
    ax_load.set_ylabel("arrivals (req/s)")
    for res in results:
        ts = [s.t / 60.0 for s in res.samples]
        ax_rep.step(ts, [s.replicas for s in res.samples], where="post", label=res.policy,
                    linewidth=1.2)
        xs, _, p95 = minute_series(res)
        ax_lat.plot(xs, p95, label=res.policy, linewidth=1)
    ax_rep.set_ylabel("replicas")
    ax_rep.legend(loc="upper left", fontsize=8)
    ax_lat.axhline(slo_s, color="red", linestyle="--", linewidth=1, label="SLO")
    ax_lat.set_ylabel("p95 latency per minute (s)")
    ax_lat.set_yscale("log")
    ax_lat.legend(loc="upper left", fontsize=8)
    if ttft_slo_s is not None:
        ax_ttft = axes[3]
        for res in results:
            xs, _, p95 = minute_series(res, ttft=True)
            ax_ttft.plot(xs, p95, label=res.policy, linewidth=1)
        ax_ttft.axhline(ttft_slo_s, color="red", linestyle="--", linewidth=1, label="TTFT SLO")
        ax_ttft.set_ylabel("p95 TTFT per minute (s)")
        ax_ttft.set_yscale("log")
    axes[-1].set_xlabel("minutes")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = plot_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
