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


def plot_scaling(data: dict[str, Any], path: Path) -> Path:
    """Latency, bytes and accuracy against knowledge-set size, both methods; the context window marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = data.get("scaling") or []
    n = [r["n_facts"] for r in rows]
    fig, (lat, size, acc) = plt.subplots(1, 3, figsize=(14, 4.3), dpi=110)

    def series(ax: Any, key: str, label: str, style: str, color: str, scale: float = 1.0) -> None:
        pts = [(x, r[key] * scale) for x, r in zip(n, rows, strict=True) if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), style, color=color, label=label, markersize=4)

    series(lat, "encode_ms", "RECKONING encode (once per set)", "o-", "tab:blue")
    series(lat, "ask_ms", "RECKONING ask (per question)", "s-", "tab:cyan")
    series(lat, "icr_ms", "in-context, facts in every prompt (per question)", "o-", "tab:orange")
    series(lat, "icr_prefix_prefill_ms", "prefix-cached in-context: prefill (once per set)", "^--", "tab:red")
    series(lat, "icr_prefix_ms", "prefix-cached in-context: ask (per question)", "s--", "tab:brown")
    lat.set(yscale="log", ylabel="ms (median)", title="latency")
    series(size, "delta_bytes", "RECKONING delta (stored form)", "o-", "tab:blue", 1e-6)
    series(size, "kv_cache_bytes", "KV cache of the facts (fp16)", "o-", "tab:orange", 1e-6)
    series(size, "kv_cache_bytes_needed", "KV cache if the window allowed it", "x:", "tab:orange", 1e-6)
    size.set(ylabel="MB per knowledge set", title="bytes kept per knowledge set")
    series(acc, "accuracy_reckoning", "RECKONING", "o-", "tab:blue", 100)
    series(acc, "accuracy_icr", "in-context (FT-ICR model)", "o-", "tab:orange", 100)
    series(acc, "majority_label_share", "majority label", "_:", "grey", 100)
    acc.set(ylabel="accuracy (%)", title="accuracy (solver-labelled generated sets)", ylim=(0, 100))
    beyond = [r["n_facts"] for r in rows if not r.get("icr_fits", True)]
    for ax in (lat, size, acc):
        ax.set_xscale("log", base=2)
        ax.set_xticks(n, [str(x) for x in n])
        ax.set_xlabel("sentences in the knowledge set")
        if beyond:
            ax.axvspan(min(beyond) / 1.4, max(n) * 1.4, color="grey", alpha=0.12, lw=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    load = (data.get("load_average") or {}).get("start")
    fig.suptitle("Scaling with knowledge size (shaded: the in-context prompt exceeds the context window)"
                 + (f"; measured under load average {load[0]}" if load else ""), fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
