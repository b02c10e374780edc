"""A map of the library: every track as a point in 2-D, near tracks near each other, coloured by genre.

``project`` lays the index's unit vectors out with PCA or t-SNE (scikit-learn); ``neighbours_kept`` measures a
layout as the share of each track's 10 nearest neighbours (cosine, in the index) that stay among its 10 nearest
on the map. ``write_png`` draws it with matplotlib; ``html`` is one self-contained page (an SVG, hover labels,
and click-to-play when the page comes from ``soundalike serve``, which serves it at ``/map``).
"""

import html as html_text
import json

import numpy as np

#: t-SNE up to this many tracks (its cost grows faster than the library); PCA past it
TSNE_MAX = 20_000
METHODS = ("auto", "pca", "tsne")
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#ad494a"]


def vectors(s) -> tuple[np.ndarray, np.ndarray]:
    """(ids, unit vectors in the index's space) of every searchable track."""
    ids = s.ids
    return ids, np.stack([s.index.reconstruct(int(i)) for i in ids]) if len(ids) else np.zeros((0, 1), np.float32)


def project(x: np.ndarray, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D coordinates of the rows of ``x`` and the method used."""
    if method == "auto":
        method = "tsne" if len(x) <= TSNE_MAX else "pca"
    if len(x) < 3:
        return np.zeros((len(x), 2)), method
    if method == "pca":
        centred = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(centred[: 50_000], full_matrices=False)
        return centred @ vt[:2].T, method
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
        return TSNE(2, metric="cosine", init="pca", perplexity=perplexity, random_state=seed).fit_transform(x), method
    raise ValueError(f"unknown map method {method!r} (one of {', '.join(METHODS)})")


def neighbours_kept(x: np.ndarray, xy: np.ndarray, k: int = 10) -> float:
    """Mean share of each track's ``k`` nearest (cosine) that are among its ``k`` nearest on the map."""
    n = len(x)
    if n <= k + 1:
        return 1.0
    take = np.random.default_rng(0).choice(n, size=min(n, 2000), replace=False)
    kept = []
    for i in take:
        near = np.argsort(-(x @ x[i]))[1 : k + 1]
        d = np.sum((xy - xy[i]) ** 2, axis=1)
        d[i] = np.inf
        kept.append(len(set(near) & set(np.argsort(d)[:k])) / k)
    return float(np.mean(kept))


def colours(labels: list) -> tuple[list[str], dict[str, str]]:
    """A colour per label: the most common ones get the palette, the rest grey."""
    counts: dict = {}
    for g in labels:
        counts[g or "unknown"] = counts.get(g or "unknown", 0) + 1
    top = [g for g, _ in sorted(counts.items(), key=lambda gc: -gc[1])][: len(PALETTE)]
    legend = {g: PALETTE[i] for i, g in enumerate(top)}
    return [legend.get(g or "unknown", "#c7c7c7") for g in labels], legend


def write_png(path, xy: np.ndarray, labels: list, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols, legend = colours(labels)
    fig, ax = plt.subplots(figsize=(9, 7), dpi=110)
    ax.scatter(xy[:, 0], xy[:, 1], c=cols, s=max(2, min(30, 6000 / max(len(xy), 1))), linewidths=0)
    for g, c in legend.items():
        ax.scatter([], [], c=c, label=g)
    ax.legend(loc="best", fontsize=8, markerscale=1.5, frameon=False)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def html(xy: np.ndarray, hits: list, labels: list, title: str) -> str:
    """A self-contained page: the map as an SVG, each point's title and artist on hover; a click plays the
    track when the page is served by ``soundalike serve`` (its audio comes from ``/api/tracks/ID/audio``)."""
    cols, legend = colours(labels)
    lo, hi = xy.min(axis=0) if len(xy) else np.zeros(2), xy.max(axis=0) if len(xy) else np.ones(2)
    pos = (xy - lo) / np.maximum(hi - lo, 1e-9) * 960 + 20
    points = [{"id": h.id, "x": round(float(p[0]), 1), "y": round(float(p[1]), 1), "c": c,
               "t": " - ".join(x for x in (h.artist, h.title) if x) or h.path.rsplit("/", 1)[-1], "g": g or ""}
              for h, p, c, g in zip(hits, pos, cols, labels)]
    legend_html = " ".join(f'<span style="color:{c}">&#9679;</span> {html_text.escape(str(g))}' for g, c in legend.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html_text.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:1rem}} svg{{border:1px solid #ddd;background:#fff;max-width:100%;height:auto}}
circle{{cursor:pointer}} #tip{{min-height:1.4em}}</style></head><body>
<div>{html_text.escape(title)}</div><div>{legend_html}</div><div id="tip">&nbsp;</div>
<svg id="map" viewBox="0 0 1000 1000" width="800" height="800"></svg><br><audio id="player" controls></audio>
<script>
const points = {json.dumps(points)};
const svg = document.getElementById("map"), tip = document.getElementById("tip");
const served = location.protocol.startsWith("http");
for (const p of points) {{
  const c = document.createElementNS("http://www.w3.org/2000/svg", "circle");
  c.setAttribute("cx", p.x); c.setAttribute("cy", 1000 - p.y); c.setAttribute("r", 5); c.setAttribute("fill", p.c);
  c.dataset.id = p.id;
  const t = document.createElementNS("http://www.w3.org/2000/svg", "title"); t.textContent = p.t + (p.g ? " (" + p.g + ")" : "");
  c.appendChild(t);
  c.addEventListener("mouseenter", () => {{ tip.textContent = t.textContent; }});
  c.addEventListener("click", () => {{
    if (!served) {{ tip.textContent = t.textContent + ": open this map from soundalike serve (/map) to play"; return; }}
    const player = document.getElementById("player"); player.src = "/api/tracks/" + p.id + "/audio"; player.play().catch(() => {{}});
  }});
  svg.appendChild(c);
}}
</script></body></html>
"""


def make_map(s, *, method: str = "auto", colour_by: str = "genre") -> tuple[np.ndarray, list, list, dict]:
    """The map of searcher ``s``: (coordinates, hits, labels, figures: method and neighbours kept)."""
    ids, x = vectors(s)
    xy, used = project(x, method)
    hits = s.hits([int(i) for i in ids], [1.0] * len(ids)) if len(ids) else []
    # by genre: the files' tag, else the encoder's prediction; by "predicted": the prediction only
    labels = [(h.genre or h.predicted_genre) if colour_by == "genre" else h.predicted_genre for h in hits]
    return xy, hits, labels, {"method": used, "tracks": len(ids), "neighbours_kept_at_10": round(neighbours_kept(x, xy), 3)}
