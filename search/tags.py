"""Tags of an outside file, predicted by an encoder's classifier head."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..search.searcher import QueryError


def predict_tags(path: str | os.PathLike, *, model: str | os.PathLike = "musicnn", top: int = 10) -> dict:
    """``{"path", "encoder", "genre", "genre_score", "tags": [{"tag", "score"}...]}`` for one audio file,
    tag scores averaged over the file's analysis windows."""
    from ..model.audio import AudioError
    from ..model.encoder import ModelError
    from ..model.registry import load_encoder
    from ..model.musicnn import WeightsMissing

    path = Path(path)
    if not path.is_file():
        raise QueryError(f"{path}: no such file")
    try:
        enc = load_encoder(model)
    except (ModelError, WeightsMissing) as err:
        raise QueryError(str(err)) from None
    if not enc.labels:
        raise QueryError(f"{model}: this encoder has no classifier head, it cannot tag")
    try:
        windows, _ = enc.frontend.windows(path)
    except AudioError as err:
        raise QueryError(str(err)) from None
    _, scores = enc.encode(enc.features(windows))
    genre, genre_score, tags, tag_scores = enc.predicted(enc.track_scores(scores), top=top)
    return {"path": str(path.resolve()), "encoder": enc.name, "windows": int(len(windows)), "genre": genre,
            "genre_score": genre_score, "tags": [{"tag": t, "score": float(np.round(s, 4))} for t, s in zip(tags, tag_scores)]}
