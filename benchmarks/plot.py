"""The amortization figure: total time for N questions on one knowledge set, RECKONING vs in-context."""

from pathlib import Path
from typing import Any


def plot_amortization(data: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    am = data["amortization"]
    n, reck, icr = am["n"], am["reckoning_ms"], am["icr_ms"]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.plot(n, [v / 1e3 for v in reck], color="tab:blue", label="RECKONING: encode once + N asks")
    ax.plot(n, [v / 1e3 for v in icr], color="tab:orange", label="in-context: N asks with all facts in the prompt")
    b = am.get("batched")
    if b and b.get("n"):
        ax.plot(b["n"], [v / 1e3 for v in b["reckoning_ms"]], "o--", color="tab:blue", alpha=0.6, markersize=4,
                label="RECKONING, N questions in one batched ask")
        ax.plot(b["n"], [v / 1e3 for v in b["icr_ms"]], "o--", color="tab:orange", alpha=0.6, markersize=4,
                label="in-context, N questions in one batch")
    if am.get("crossover_n"):
        ax.axvline(am["crossover_n"], color="grey", linestyle=":", linewidth=1)
        ax.annotate(f"measured break-even N={am['crossover_n']}", (am["crossover_n"], 0), xytext=(4, 8),
                    textcoords="offset points", fontsize=8, color="grey")
    model = data.get("model", {})
    machine = data.get("machine", {})
    ax.set_title(f"Amortization on {model.get('name', 'model')} "
                 f"({machine.get('torch_threads', '?')} torch thread(s), median of {am.get('repeats', '?')})",
                 fontsize=10)
    ax.set_xlabel("questions about one knowledge set (N)")
    ax.set_ylabel("total wall time (s)")
    ax.set_xlim(0, max(n) + 1)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
