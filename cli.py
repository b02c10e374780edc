"""soundalike: music search by sound. The command line: parse, call the packages, print.

Heavy libraries (TensorFlow, FAISS, librosa) are imported inside the commands, so ``--help`` answers at once.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import click

from .errors import SoundalikeError

#: options several commands share
STORE_OPTION = click.option("--db", "store", required=True, type=click.Path(), help="Store directory.")
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
INDEX_KIND_OPTION = click.option(
    "--index", "index_kind", type=click.Choice(["auto", "flat", "ivf", "ivfpq"]), default=None,
    help="Index kind from now on: flat (an exact scan of compact codes), ivf (inverted lists, recall measured at "
         "build), ivfpq (smaller product-quantised codes), auto (flat up to 200,000 tracks, ivf past that, ivfpq "
         "when 8-bit codes would not fit --memory) [default: the store's, else auto].")
MEMORY_OPTION = click.option(
    "--memory", default=None, metavar="SIZE",
    help="Memory budget for the index, e.g. 2G or 512M: under auto, a library whose 8-bit codes would not fit "
         "gets product-quantised codes that do.")


class UserError(click.ClickException):
    """A bad request: one line on stderr, exit code 2 (click's usage convention) unless the error says another."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def _run(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``; a :class:`SoundalikeError` becomes its one line and its exit code."""
    try:
        return fn(*args, **kwargs)
    except SoundalikeError as err:
        raise UserError(str(err), err.exit_code) from None


def _index_policy(store, kind: str | None, memory: str | None):
    """The index policy the options ask for, None when they ask nothing (the store keeps its own)."""
    if kind is None and memory is None:
        return None
    from .catalog.indexes import Policy, parse_memory
    from .catalog.store import is_store, read_manifest

    have = Policy.from_dict(read_manifest(store).get("index_policy")) if is_store(store) else Policy()
    return _run(lambda: Policy(kind=kind or have.kind, memory=parse_memory(memory) if memory is not None else have.memory))


def _width() -> int:
    return max(60, shutil.get_terminal_size((100, 24)).columns)


def _cut(text, width: int, *, left: bool = False) -> str:
    text = "" if text is None else str(text)
    if len(text) <= width:
        return text.ljust(width)
    return ("..." + text[-(width - 3):]) if left else (text[: width - 3] + "...")


def _echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="soundalike")
def main() -> None:
    """Find music that sounds alike: index a folder of audio, then search it by sound."""


# --------------------------------------------------------------------------------------------------- index


@main.command()
@click.argument("library_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--db", "store", required=True, type=click.Path(), help="Store directory (created if missing).")
@click.option("--model", help="Encoder: musicnn (the pretrained MSD and MTT networks side by side), student (a "
              "small CNN distilled from musicnn, shipped), musicnn-msd or musicnn-mtt (one network), a student of "
              "your own (.npz from 'distill') or a trained .keras model. Default: the store's own, else the default "
              "encoder.")
@click.option("--genre-from", type=click.Choice(["tags", "folder"]), default="tags", show_default=True,
              help="Genre from tags, or from each file's top folder under LIBRARY_DIR.")
@click.option("--workers", type=int, default=None, help="Decode processes (default: one per core; 0 = in this process).")
@click.option("--checkpoint-every", type=float, default=60.0, show_default=True, help="Seconds between checkpoints.")
@click.option("--decode-timeout", type=click.FloatRange(min=1.0), default=120.0, show_default=True,
              help="Seconds a file may take to decode (in a worker process) before it is skipped as hung.")
@click.option("--force", is_flag=True, help="Re-embed every file, changed or not.")
@click.option("--retry-failed", is_flag=True, help="Try files that failed before again.")
@click.option("--prune", is_flag=True, help="Remove tracks whose files are gone even when they are more than 10%% of "
              "the library (otherwise such a run removes nothing and marks them missing).")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--strict", is_flag=True, help="Exit with status 1 when any file failed.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where decode and encode run: processes of this machine, or Ray Data (pip install 'soundalike[ray]').")
@click.option("--address", help="With --engine ray: the Ray cluster to use (default: start a local Ray instance).")
@INDEX_KIND_OPTION
@MEMORY_OPTION
@click.option("--encoders", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --engine ray: encoder actors (each loads the model once).")
def index(library_dir, store, model, genre_from, workers, checkpoint_every, decode_timeout, force, retry_failed, prune,
          dry_run, as_json, quiet, strict, engine, address, index_kind, memory, encoders):
    """Index the audio files under LIBRARY_DIR into a store (only new and changed files are decoded)."""
    from .indexer.run import index_library

    report = _run(
        index_library, library_dir, store, model=model, genre_from=genre_from, workers=workers,
        checkpoint_s=checkpoint_every, force=force, retry_failed=retry_failed, prune=prune, dry_run=dry_run,
        decode_timeout_s=decode_timeout, engine=engine, address=address, encoders=encoders,
        index_policy=_index_policy(store, index_kind, memory),
        progress=not (quiet or as_json), log=lambda m: click.echo(m, err=True),
    )
    if as_json:
        _echo_json(report.to_dict())
    else:
        _print_index_report(report)
    if report.interrupted:
        sys.exit(130)
    if strict and report.failed:
        sys.exit(1)


def _print_index_report(r) -> None:
    from .indexer.run import PRUNE_SHARE

    what = "would add" if r.dry_run else "added"
    click.echo(f"{r.root}: {r.scanned} audio files; {what} {r.added}, updated {r.updated}, "
               + (f"moved {r.moved}, " if r.moved else "") + f"removed {r.removed}, "
               f"unchanged {r.unchanged}, failed {r.failed}" + (f", missing {r.missing}" if r.missing else ""))
    if r.held:
        click.echo(f"  kept {r.held} tracks whose files are gone: more than {PRUNE_SHARE:.0%} of the library at once "
                   f"(a drive not mounted? a moved folder?); they are marked missing. If they are really gone, run "
                   f"again with --prune", err=True)
    for path, reason in r.failures[:20]:
        click.echo(f"  failed: {path}: {reason}", err=True)
    if len(r.failures) > 20:
        click.echo(f"  ... and {len(r.failures) - 20} more (soundalike info --db ... lists them)", err=True)
    for path, reason in r.scan_problems[:10]:
        click.echo(f"  skipped: {path}: {reason}", err=True)
    if not r.dry_run and (r.added or r.updated or r.removed or r.failed):
        st = r.stages
        click.echo(
            f"time {r.wall_s:.1f}s: scan {st['scan']:.1f}s, decode {st['decode']:.1f}s, features {st['features']:.1f}s "
            f"(summed over workers), encode {st['encode']:.1f}s" + (f" ({r.runtime})" if r.runtime else "") + f", write {st['write']:.1f}s; "
            f"{r.windows} windows"
        )


# -------------------------------------------------------------------------------------------------- search


@main.command()
@click.argument("queries", metavar="[QUERY]...", nargs=-1)
@STORE_OPTION
@click.option("--id", "by_id", is_flag=True, help="QUERY is a track id of the store (soundalike find shows ids).")
@click.option("-k", "k", type=click.IntRange(1, 10_000), default=10, show_default=True, help="Number of results.")
@click.option("--genre", "genres", multiple=True, help="Only tracks of this genre (repeatable).")
@click.option("--genre-source", type=click.Choice(["tags", "predicted", "any"]), default="tags", show_default=True,
              help="Match --genre against the files' tags, the encoder's predicted genre, or either.")
@click.option("--exclude-artist-of-query", is_flag=True, help="Leave out tracks by the query's artist.")
@click.option("--max-per-artist", type=click.IntRange(1), default=None,
              help="At most N results by one artist (the best of each kept). Off by default: search ranks by sound, "
                   "and an artist's own tracks often sound most alike.")
@click.option("--max-per-album", type=click.IntRange(1), default=None,
              help="At most N results from one album (album tag within one folder). Off by default.")
@click.option("--tag", "tags", multiple=True,
              help="Rank by the encoder's predicted tag (repeatable: their mean), e.g. --tag piano; with QUERYs, "
                   "tracks like them among the 10% of the library highest on the tags.")
@click.option("--keep-copies", is_flag=True,
              help="Show near-duplicate recordings (re-encodings, other mixes) as results of their own; by default "
                   "they are listed under the result they copy, and copies of the query are left out.")
@click.option("--bpm", "bpm_text", metavar="LOW-HIGH",
              help="Only tracks whose estimated tempo lies in this range, e.g. 118-126 (one number N: N +- 4%%).")
@click.option("--key", "keys", multiple=True, metavar="KEY",
              help="Only tracks in this estimated key, e.g. 'A minor', Am, 'F# major' (repeatable).")
@click.option("--compatible-key", is_flag=True,
              help="Widen --key (or, without it, the query's own key) to the keys a DJ mixes it with: its relative "
                   "major or minor and the keys a fifth above and below.")
@click.option("--excerpt/--no-excerpt", default=None,
              help="Treat the QUERY file as an excerpt (a clip of some song): tracks ranked by their analysed windows "
                   "that best match the clip's, with where in the track it matched. Default: on for an outside "
                   "file shorter than the stretch a track vector spans (about 48 s for musicnn).")
@click.option("--cosine", is_flag=True,
              help="Rank by plain cosine. By default a store of the default encoder ranks by CSLS, which discounts "
                   "tracks that are near everything (hubs); the score shown is the cosine either way.")
@click.option("--json", "as_json", is_flag=True, help="Print results as a JSON list.")
@click.option("--m3u", type=click.Path(dir_okay=False, allow_dash=True), help="Write the results as an M3U playlist ('-' for stdout).")
def search(queries, store, by_id, k, genres, genre_source, exclude_artist_of_query, max_per_artist, max_per_album,
           tags, keep_copies, bpm_text, keys, compatible_key, excerpt, cosine, as_json, m3u):
    """Tracks that sound like QUERY: a file in the store, an id (--id), or any audio file. Several QUERYs:
    tracks like all of them (near the centroid of their vectors), none of them returned. --tag ranks by the
    encoder's predicted tags instead, or narrows the QUERYs' neighbours to the tracks high on them."""
    from .search.query import Query, run
    from .search.searcher import Searcher

    q = _run(Query.parse, queries, by_id=by_id, tags=tags, k=k, genres=genres, genre_source=genre_source,
             exclude_artist_of_query=exclude_artist_of_query, max_per_artist=max_per_artist,
             max_per_album=max_per_album, keep_copies=keep_copies, bpm=bpm_text, keys=keys,
             compatible_key=compatible_key, excerpt=excerpt)
    result = _run(run, _run(Searcher, store, rescore=not cosine), q)
    if not as_json:
        for note in result.notes:
            click.echo(note, err=True)
    hits = result.hits
    if m3u:
        _write_m3u(m3u, hits)
    if as_json:
        _echo_json([h.to_dict() for h in hits])
    elif m3u != "-":
        _print_hits(hits)
    copies = result.copies_of_query
    if copies and not as_json:
        shown = ", ".join(f"{c.path} ({c.score:.3f})" for c in copies[:3]) + (" ..." if len(copies) > 3 else "")
        click.echo(f"left out {len(copies)} cop{'y' if len(copies) == 1 else 'ies'} of the query: {shown}", err=True)


@main.command()
@STORE_OPTION
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="Cosine from which two tracks are copies [default: the one measured for the store's encoder].")
@click.option("--m3u", type=click.Path(dir_okay=False, allow_dash=True), help="Write the groups as an M3U playlist ('-' for stdout).")
@click.option("--exact", is_flag=True, help="Compare every track with every other (slower past 20,000 tracks; "
                                          "the default compares each with its nearest clusters).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@JSON_OPTION
def dupes(store, threshold, m3u, exact, quiet, as_json):
    """Groups of likely copies: the same recording in several files (re-encoded, resampled, another mix)."""
    from .search.dupes import groups, threshold_for
    from .search.searcher import Searcher

    s = _run(Searcher, store)
    if threshold is None:
        threshold = threshold_for(s.store.encoder_info)
        if threshold is None:
            raise UserError(f"no copy threshold is measured for encoder {s.store.encoder_info.get('name')!r}: "
                            f"give one with --threshold")
    found = _run(groups, s, threshold=threshold, exact=exact, progress=not (quiet or as_json or m3u == "-"))
    members = [s.hits(g.ids, [1.0] * len(g.ids)) for g in found]
    rows = [{"weakest": g.weakest, "tracks": [{k: v for k, v in h.to_dict().items() if k not in ("score", "copies")}
                                              for h in hits]} for g, hits in zip(found, members)]
    if m3u:
        _write_m3u(m3u, [h for hits in members for h in hits])
    if as_json:
        _echo_json(rows)
    elif m3u != "-":
        if not rows:
            click.echo(f"no copies found (cosine >= {threshold:.2f} and durations within 10%)")
        w = _width()
        for n, r in enumerate(rows, 1):
            click.echo(f"group {n}: {len(r['tracks'])} tracks, cosine >= {r['weakest']:.3f}")
            for t in r["tracks"]:
                dur = f"{t['duration_s']:.0f}s" if t["duration_s"] else "?"
                click.echo(f"  {t['id']:>7} {dur:>6}  {_cut(t['path'], w - 18, left=True)}")


@main.command()
@click.argument("text", nargs=-1, required=True)
@STORE_OPTION
@click.option("-n", "limit", type=click.IntRange(1, 100_000), default=20, show_default=True, help="At most this many tracks.")
@JSON_OPTION
def find(text, store, limit, as_json):
    """Tracks whose title, artist, album or path hold every word of TEXT, with their ids (for search --id)."""
    from .search.searcher import Searcher

    s = _run(Searcher, store)
    hits = _run(s.find, " ".join(text), limit=limit)
    if as_json:
        _echo_json([h.to_dict() for h in hits])
        return
    if not hits:
        click.echo("no tracks match")
        return
    w = _width()
    iw = max(2, *(len(str(h.id)) for h in hits))
    rest = w - iw - 4
    tw, aw, bw = rest * 3 // 10, rest * 2 // 10, rest * 2 // 10
    pw = rest - tw - aw - bw
    click.echo(f"{'id':>{iw}}  {_cut('title', tw)} {_cut('artist', aw)} {_cut('album', bw)} {_cut('path', pw)}")
    for h in hits:
        click.echo(f"{h.id:>{iw}}  {_cut(h.title, tw)} {_cut(h.artist, aw)} {_cut(h.album, bw)} {_cut(h.path, pw, left=True)}")


def _print_hits(hits) -> None:
    if not hits:
        click.echo("no results")
        return
    w = _width()
    rest = w - 4 - 7 - 4
    gw = min(14, max(5, *(len(h.genre or "") for h in hits)))
    music = any(h.bpm is not None or h.key is not None for h in hits)
    mw = 14 if music else 0  # "126 F# minor"
    tw, aw = (rest - gw - mw) * 3 // 10, (rest - gw - mw) * 2 // 10
    pw = rest - tw - aw - gw - mw
    mh = _cut("bpm key", mw - 1) + " " if music else ""
    click.echo(f"{'#':>3} {'score':>6}  {_cut('title', tw)} {_cut('artist', aw)} {_cut('genre', gw)} {mh}{_cut('path', pw)}")
    for i, h in enumerate(hits, 1):
        mark = "(missing) " if h.missing else ""  # out of reach at the last index run
        if h.at_s is not None:
            mark += f"(at {int(h.at_s) // 60}:{int(h.at_s) % 60:02d}) "
        if h.copies:
            mark += f"(+{len(h.copies)} cop{'y' if len(h.copies) == 1 else 'ies'}) "
        mv = ""
        if music:
            mv = _cut(f"{'' if h.bpm is None else f'{h.bpm:.0f}':>3} {h.key or ''}", mw - 1) + " "
        click.echo(f"{i:>3} {h.score:6.3f}  {_cut(h.title, tw)} {_cut(h.artist, aw)} {_cut(h.genre, gw)} {mv}"
                   f"{mark}{_cut(h.path, pw - len(mark), left=True)}")


def _write_m3u(target: str, hits, relative: bool = False) -> None:
    """An M3U of ``hits`` to the file ``target`` ('-': standard output); ``relative``: paths relative to the
    playlist's folder (the current one for standard output)."""
    from .search.searcher import m3u

    text = m3u(hits, relative_to=(os.path.dirname(os.path.abspath(target)) if target != "-" else os.getcwd())
               if relative else None)
    if target == "-":
        click.echo(text, nl=False)
    else:
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)


# ---------------------------------------------------------------------------------------------------- tags


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--model", default="musicnn", show_default=True,
              help="A built-in encoder (musicnn, student, musicnn-msd, musicnn-mtt), a student .npz or a .keras model.")
@click.option("--top", type=click.IntRange(1, 50), default=10, show_default=True)
@JSON_OPTION
def tags(file, model, top, as_json):
    """Predicted tags (and genre) of an audio file."""
    from .search.tags import predict_tags

    res = _run(predict_tags, file, model=model, top=top)
    if as_json:
        _echo_json(res)
        return
    click.echo(f"{res['path']}  ({res['encoder']}, {res['windows']} windows)")
    click.echo(f"genre  {res['genre']} ({res['genre_score']:.2f})")
    for t in res["tags"]:
        click.echo(f"  {t['score']:.3f}  {'#' * int(round(t['score'] * 30)):<30} {t['tag']}")


# ---------------------------------------------------------------------------------------------------- info


def _echo_measured(m: dict) -> None:
    """The recall and latency lines of ``info``: what the index's build measured (its infos file)."""
    lat, flt = m.get("latency_ms") or {}, m.get("latency_filtered_ms") or {}
    probe = f", nprobe {m['nprobe']} of {m['nlist']} lists" if m.get("nprobe") else ""
    filtered = (f"; {m['recall_filtered_at_10']:.3f} with a 10% filter" if m.get("recall_filtered_at_10") is not None
                else "") + (f" (nprobe {m['nprobe_filtered']})" if m.get("nprobe_filtered") else "")
    click.echo(f"recall    {m['recall_at_10']:.3f} recall@10 against exact search over the full vectors "
               f"({m.get('queries')} queries at {m.get('measured_on')} tracks{probe}){filtered}")
    parts = []
    if m.get("recall_codes_at_10") is not None:
        parts.append(f"{m['recall_codes_at_10']:.3f} against a scan of all its codes")
    if m.get("variance_kept") is not None:
        parts.append(f"the PCA to {m.get('width')} dimensions keeps {m['variance_kept']:.1%} of the variance")
    if parts:
        click.echo(f"          {'; '.join(parts)}")
    click.echo(f"latency   {lat.get('p50', float('nan')):.2f} ms p50 a query, "
               f"{flt.get('p50', float('nan')):.2f} ms with a 10% filter (one thread)")


@main.command()
@STORE_OPTION
@JSON_OPTION
def info(store, as_json):
    """What a store holds: encoder, counts, genres, failures, disk size."""
    from .search.info import store_info

    data = _run(store_info, store)
    if as_json:
        _echo_json(data)
        return
    enc = data["encoder"]
    click.echo(f"store     {data['path']} (generation {data['generation']}, format {data['format_version']})")
    click.echo(f"encoder   {enc['name']} dim {enc['dim']} fingerprint {enc['fingerprint']}")
    if enc.get("runtimes"):
        click.echo(f"runtime   {', '.join(enc['runtimes'])}")
    c = data["counts"]
    click.echo(f"tracks    {c['tracks']} ({c['ok']} indexed, {c['error']} failed, {c['missing']} missing), "
               f"{c['vectors']} vectors in the index")
    idx, tf, measured = data.get("index") or {}, data.get("transform"), data.get("index_infos") or {}
    if idx:
        size = f", {idx['bytes'] / max(idx.get('count') or 1, 1):.0f} bytes a track" if idx.get("bytes") else ""
        click.echo(f"index     {idx.get('kind')}, {idx.get('count')} vectors{size}, built at generation "
                   f"{idx.get('built', idx.get('generation'))}, updated in place {idx.get('updates', 0)} times since")
        if measured.get("recall_at_10") is not None:
            _echo_measured(measured)
        if idx.get("delta"):
            from .catalog.store import DELTA_FRACTION

            click.echo(f"delta     {idx['delta']['count']} vectors written since the index was built, "
                       f"{idx['delta']['hidden_count']} of its vectors replaced or removed (folded in at {DELTA_FRACTION:.0%} of the library)")
    if tf:
        click.echo(f"transform {tf.get('kind')} fitted on {tf.get('fitted_on')} tracks; refitted when the library "
                   f"reaches {tf['refit_at']} tracks, or by 'soundalike reindex --refit'")
    if data.get("within"):
        click.echo(f"whitening within-track sums over the windows of {data['within']['tracks']} tracks")
    nb = data.get("neighbours")
    if nb:
        click.echo(f"ranking   CSLS: a track's r, its mean cosine to its {nb['k']} nearest, known for {nb['tracks']} tracks "
                   f"(median {nb['median'] or 0:.3f}), all computed again at generation {nb['recomputed']} "
                   "(search --cosine: plain cosine)")
    win = data.get("windows")
    if win:
        delta = f" + {win['delta']['count']} in a delta" if win.get("delta") else ""
        disk = ", inverted lists on disk" if win.get("lists") else ""
        click.echo(f"excerpts  {win.get('kind')}, {win.get('count')} windows{delta}{disk} (search CLIP --excerpt)")
    mus, ok = data.get("music") or {}, data["counts"].get("ok", 0)
    if ok:
        note = (" (search --bpm, --key, --compatible-key)" if mus.get("with_key") else
                " (indexed before tempo and key were estimated: 'soundalike index DIR --db STORE --force')")
        click.echo(f"tempo/key {mus.get('with_tempo', 0)} / {mus.get('with_key', 0)} of {ok} tracks{note}")
    click.echo(f"disk      {data['disk_bytes'] / 1e6:.1f} MB")
    if data["genres"]:
        click.echo("genres    " + ", ".join(f"{g} {n}" for g, n in data["genres"].items()))
    for f in data["failures"][:20]:
        click.echo(f"failed    {f['path']}: {f['error']}")
    if len(data["failures"]) > 20:
        click.echo(f"failed    ... and {len(data['failures']) - 20} more (--json lists all)")
    if data["missing"]:
        click.echo(f"missing   {len(data['missing'])} files out of reach at the last index run (kept with their "
                   f"vectors; run index again when they are back, or with --prune if they are gone)")
    for f in data["missing"][:10]:
        click.echo(f"missing   {f['path']}")
    if len(data["missing"]) > 10:
        click.echo(f"missing   ... and {len(data['missing']) - 10} more (--json lists all)")


@main.command()
@STORE_OPTION
@JSON_OPTION
def failures(store, as_json):
    """Files that could not be indexed, each with its one-line reason."""
    from .search.info import store_info

    rows = _run(store_info, store)["failures"]
    if as_json:
        _echo_json(rows)
        return
    for f in rows:
        click.echo(f"{f['path']}: {f['error']}")
    click.echo(f"{len(rows)} failed", err=True)


@main.command()
@STORE_OPTION
@JSON_OPTION
def verify(store, as_json):
    """Check every file of a store against its checksum, and that its parts agree. Exit 1 if damaged."""
    from .catalog.check import verify as verify_store

    res = _run(verify_store, store)
    if as_json:
        _echo_json(res)
    else:
        for p in res["problems"]:
            click.echo(f"{p['file']}: {p['problem']}")
        click.echo(f"{store}: {'ok' if res['ok'] else 'DAMAGED'} (generation {res['generation']}, "
                   f"{res['files_checked']} files checked)" + ("" if res["ok"] else "; 'soundalike repair' rebuilds what it can"))
    sys.exit(0 if res["ok"] else 1)


@main.command()
@STORE_OPTION
@JSON_OPTION
def repair(store, as_json):
    """Rebuild what can be rebuilt of a damaged store (index, transform, manifest) from its shards."""
    from .catalog.check import repair as repair_store

    res = _run(repair_store, store)
    if as_json:
        _echo_json(res)
    else:
        for a in res["actions"]:
            click.echo(a)
        click.echo(f"{store}: {'ok' if res['verify']['ok'] else 'still damaged'}")
    sys.exit(0 if res["verify"]["ok"] else 1)


@main.command()
@STORE_OPTION
@click.option("--refit", is_flag=True, help="Fit the library transform anew first (scores move); without it the "
              "index is rebuilt with the transform it has.")
@INDEX_KIND_OPTION
@MEMORY_OPTION
@JSON_OPTION
def reindex(store, refit, index_kind, memory, as_json):
    """Rebuild a store's index from its vector shards (no audio is decoded)."""
    from .catalog.check import reindex as reindex_store

    res = _run(reindex_store, store, refit=refit, index_policy=_index_policy(store, index_kind, memory))
    if as_json:
        _echo_json(res)
        return
    tf = res["transform"]
    fit = f"; transform fitted on {tf['fitted_on']} tracks" + (" (refitted)" if refit else "") if tf else ""
    idx, measured = res["index"], res["index_infos"]
    recall = f", recall@10 {measured['recall_at_10']:.3f}" if measured.get("recall_at_10") is not None else ""
    click.echo(f"{store}: index {idx['kind']} rebuilt with {res['vectors']} vectors in {res['seconds']:.1f}s "
               f"(generation {res['generation']}){recall}{fit}")


# --------------------------------------------------------------------------------------------------- train


@main.command()
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Model file to write (.keras; a .json sidecar goes beside it).")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Default: 100 for a head, 30 for the seed CNN.")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Default: 64 for a head, 32 for the seed CNN.")
@click.option("--val-fraction", type=click.FloatRange(0.0, 0.9), default=0.15, show_default=True,
              help="Share of each class's tracks for validation (curves; early stopping for the seed CNN).")
@click.option("--test-fraction", type=click.FloatRange(0.0, 0.9), default=0.15, show_default=True, help="Share of each class's tracks held out for testing.")
@click.option("--cache", type=click.Path(file_okay=False), default=None, help="Training cache folder (see 'prepare'); made or updated first.")
@click.option("--no-augment", is_flag=True, help="No spectrogram augmentation (seed CNN).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--backbone", type=click.Choice(["none", "musicnn", "musicnn-msd", "musicnn-mtt"]), default="musicnn", show_default=True,
              help="Train a head on the frozen pretrained musicnn, or (none) the seed CNN from scratch.")
@click.option("--windows", type=click.IntRange(1), default=None, help="Windows per track (default: the front end's).")
@click.option("--members", type=click.IntRange(1), default=None,
              help="Heads trained apart (other seeds) and averaged; the seed CNN is one.  [default: 1]")
@click.option("--workers", type=int, default=None, help="Decode processes (default: one per core).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def train(dataset_dir, output, backbone, epochs, batch_size, val_fraction, test_fraction, cache, no_augment, seed, windows,
          members, workers, as_json):
    """Train a genre classifier on a folder-per-genre DATASET_DIR (rock/, jazz/, ...); the result is an
    encoder for 'index --model'."""
    from .model.train import train_model

    if not output.endswith(".keras"):
        raise UserError(f"{output}: the model file must end in .keras")
    log = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    res = _run(train_model, dataset_dir, output, backbone=backbone, n_windows=windows, cache=cache, epochs=epochs,
               batch_size=batch_size, val_fraction=val_fraction, test_fraction=test_fraction, augment=not no_augment,
               seed=seed, members=members, workers=workers, progress=not as_json, log=log)
    out = {
        "model": os.path.abspath(output), "backbone": backbone, "classes": res.classes, "tracks_train": res.n_train_tracks,
        "tracks_val": res.n_val_tracks, "val_window_accuracy": res.val_window_accuracy,
        "val_track_accuracy": res.val_track_accuracy, "tracks_test": res.n_test_tracks,
        "test_window_accuracy": res.test_window_accuracy, "test_track_accuracy": res.test_track_accuracy,
        "epochs": len(res.history.get("loss", [])),
        "history": res.history, "seconds": round(res.seconds, 1), "fingerprint": res.encoder.fingerprint,
        "failures": [{"path": p, "error": e} for p, e in res.failures],
    }
    if as_json:
        _echo_json(out)
        return
    acc = "n/a" if res.val_track_accuracy is None else f"{res.val_track_accuracy:.3f}"
    wacc = "n/a" if res.val_window_accuracy is None else f"{res.val_window_accuracy:.3f}"
    click.echo(f"saved {output} (+ .json sidecar), fingerprint {res.encoder.fingerprint}")
    click.echo(f"validation: track accuracy {acc}, window accuracy {wacc} on {res.n_val_tracks} tracks; "
               f"{out['epochs']} epochs in {res.seconds:.0f}s")
    if res.test_track_accuracy is not None:
        click.echo(f"test: track accuracy {res.test_track_accuracy:.3f}, window accuracy {res.test_window_accuracy:.3f} "
                   f"on {res.n_test_tracks} held-out tracks (soundalike evaluate {dataset_dir} --model {output} --test-split)")


@main.command()
@click.argument("music_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--work", required=True, type=click.Path(file_okay=False),
              help="Folder for the collected windows and the teacher's features (a run interrupted resumes there).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Student to write (.npz; a .json sidecar goes beside it). Use it with 'index --model FILE.npz'.")
@click.option("--epochs", type=click.IntRange(1), default=30, show_default=True,
              help="Passes over the windows; the learning rate decays to nothing over them.")
@click.option("--patience", type=click.IntRange(1), default=None,
              help="Stop after this many epochs without a better held-out loss (default: never; the best is kept).")
@click.option("--time-limit", type=click.FloatRange(min=0.1), default=None,
              help="Minutes of training at most: the learning rate then decays over the epochs that fit.")
@click.option("--bands", type=click.Choice(["0", "6", "12"]), default=None,
              help="Frequency bands the network keeps before pooling over time (0: their maximum). [default: the "
                   "recipe's]")
@click.option("--no-augment", is_flag=True, help="Only the collected windows (no mixed or transposed ones).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=int, default=None, help="Decode processes (default: one per core).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def distill(music_dirs, work, output, epochs, patience, time_limit, bands, no_augment, seed, workers, as_json):
    """Train a small student encoder to reproduce the default encoder on the music under MUSIC_DIRS (no labels
    needed): collect every track's windows and the teacher's features into --work, then fit the student."""
    from .model import distill as d

    if not output.endswith(".npz"):
        raise UserError(f"{output}: the student file must end in .npz")
    log = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    collected = {"tracks": 0, "windows": 0, "failed": 0, "augmented": 0}
    subs = []
    for folder in music_dirs:  # each folder is collected and augmented on its own: adding one redoes no other
        sub = d.work_folder(work, folder)
        got = _run(d.collect, [folder], sub, workers=workers, progress=not as_json, log=log)
        aug = _run(d.augment, sub, seed=seed, progress=not as_json, log=log) if not no_augment else {"windows": 0}
        for k in ("tracks", "windows", "failed"):
            collected[k] += got[k]
        collected["augmented"] += aug["windows"]
        subs.append(sub)
    log(f"collected {collected['tracks']} tracks ({collected['windows']} new windows, {collected['augmented']} new "
        f"augmented windows, {collected['failed']} failed)")
    windows = _run(d.load, subs, exclude=(lambda p: p.startswith("augmented:")) if no_augment else (lambda p: False))
    res = _run(d.train, windows, output, epochs=epochs, patience=patience, seed=seed,
               bands=d.BANDS if bands is None else int(bands),
               time_limit_s=time_limit * 60 if time_limit else None, progress=not as_json, log=log)
    out = {"student": os.path.abspath(output), "tracks": int((~windows.augmented).sum()),
           "windows": int(len(windows.mel)), "collected": collected, **res}
    if as_json:
        _echo_json(out)
        return
    click.echo(f"saved {output} (+ .json sidecar): {len(res['history'])} epochs, held-out loss {res['best_val_loss']:.4f}")


@main.command()
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", "cache", required=True, type=click.Path(file_okay=False), help="Cache folder.")
@click.option("--backbone", type=click.Choice(["none", "musicnn", "musicnn-msd", "musicnn-mtt"]), default="musicnn", show_default=True,
              help="Whose front end the cache is for (musicnn's, or the seed CNN's with none).")
@click.option("--windows", type=click.IntRange(1), default=None, help="Windows per track.")
@click.option("--images", is_flag=True, help="Also write every window's spectrogram as a PNG.")
@click.option("--workers", type=int, default=None, help="Decode processes (default: one per core).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def prepare(dataset_dir, cache, backbone, windows, images, workers, as_json):
    """Decode a folder-per-genre dataset once into log-mel windows for training (reused when unchanged)."""
    import dataclasses

    from .model.prepare import prepare as prepare_cache

    fe = _frontend_for(backbone, windows)
    log = (lambda m: click.echo(m, err=True))
    rep = _run(prepare_cache, dataset_dir, cache, frontend=fe, images=images, workers=workers, progress=not as_json, log=log)
    if as_json:
        _echo_json(dataclasses.asdict(rep))
    else:
        click.echo(f"{rep.cache}: {rep.tracks} tracks; prepared {rep.prepared}, reused {rep.reused}, removed {rep.removed}, "
                   f"failed {len(rep.failed)}; {rep.silent_windows_dropped} silent windows dropped"
                   + (f"; {rep.images} images" if images else "") + f" ({rep.seconds:.1f}s)")


def _frontend_for(backbone: str, windows: int | None):
    import dataclasses

    from .model.frontend import FrontEnd

    if backbone == "none":
        fe = FrontEnd()
    else:
        from .model.musicnn import frontend as musicnn_frontend

        fe = musicnn_frontend()
    return dataclasses.replace(fe, n_windows=windows) if windows else fe


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="PNG to write.")
@click.option("--offset", type=click.FloatRange(0), default=0.0, show_default=True, help="Start, in seconds.")
@click.option("--duration", type=click.FloatRange(0.5), default=30.0, show_default=True, help="Length, in seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print what was drawn as JSON.")
def spectrogram(file, output, offset, duration, as_json):
    """Draw FILE's mel spectrogram (time in seconds, frequency in Hz) as a PNG."""
    from .model.prepare import spectrogram_png

    res = _run(spectrogram_png, file, output, offset_s=offset, duration_s=duration)
    if as_json:
        _echo_json(res)
    else:
        click.echo(res["output"])


@main.command()
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--model", required=True, help="A trained .keras model (or a built-in encoder with a classifier).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="Report folder (report.json, confusion.png, curves.png). Default: MODEL-report/ beside the model.")
@click.option("--test-split", is_flag=True, help="Only the tracks the model's training held out for testing.")
@click.option("--workers", type=int, default=None, help="Decode processes (default: one per core).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def evaluate(dataset_dir, model, report_dir, test_split, workers, as_json):
    """Accuracy per window and per track, macro F1 and a confusion matrix of a model on DATASET_DIR."""
    from .model.evaluate import evaluate as evaluate_model

    if report_dir is None:
        report_dir = (model[: -len(".keras")] if model.endswith(".keras") else model) + "-report"
    rep = _run(evaluate_model, dataset_dir, model, report_dir=report_dir, only_test_split=test_split, workers=workers,
               progress=not as_json, log=lambda m: click.echo(m, err=True))
    if as_json:
        _echo_json(rep)
        return
    click.echo(f"{rep['tracks']} tracks, {rep['windows']} windows: track accuracy {rep['track_accuracy']:.3f}, "
               f"window accuracy {rep['window_accuracy']:.3f}, macro F1 {rep['macro_f1']:.3f}")
    if rep["part_track_accuracy"]:
        click.echo("track accuracy of each part alone: " + ", ".join(f"{name} {acc:.3f}" for name, acc
                                                                     in rep["part_track_accuracy"].items()))
    names = rep["classes"]
    w = max(6, *(len(n) for n in names))
    click.echo(" " * (w + 2) + " ".join(f"{n[:6]:>6}" for n in names) + "   <- predicted")
    for n, row in zip(names, rep["confusion_matrix"]):
        click.echo(f"{n:>{w}}  " + " ".join(f"{v:>6}" for v in row))
    click.echo(f"report: {rep['report_dir']}")


# ------------------------------------------------------------------------------------------ playlist, path

LIST_OUTPUT = [
    click.option("--m3u", type=click.Path(dir_okay=False, allow_dash=True), help="Write an M3U playlist ('-' for stdout)."),
    click.option("--relative", is_flag=True, help="M3U paths relative to the playlist's folder (default: absolute)."),
    click.option("--json", "as_json", is_flag=True, help="Print the list as JSON."),
]


def _list_output(f):
    for option in reversed(LIST_OUTPUT):
        f = option(f)
    return f


def _emit_list(hits, m3u, relative, as_json, extra=None) -> None:
    if m3u:
        _write_m3u(m3u, hits, relative)
    if as_json:
        _echo_json({"tracks": [h.to_dict() for h in hits], **(extra or {})} if extra else [h.to_dict() for h in hits])
    elif m3u != "-":
        _print_hits(hits)


@main.command()
@click.argument("seeds", metavar="SEED...", nargs=-1, required=True)
@STORE_OPTION
@click.option("--id", "by_id", is_flag=True, help="SEEDs are track ids.")
@click.option("--length", type=click.IntRange(1, 10_000), default=20, show_default=True, help="Tracks in the list.")
@click.option("--genre", "genres", multiple=True, help="Only tracks of this genre (repeatable).")
@click.option("--max-per-artist", type=click.IntRange(0), default=2, show_default=True,
              help="At most N tracks by one artist (0: no limit).")
@click.option("--max-per-album", type=click.IntRange(0), default=0, show_default=True,
              help="At most N tracks from one album (0: no limit).")
@click.option("--keep-copies", is_flag=True, help="Keep near-duplicate recordings (collapsed by default).")
@_list_output
def playlist(seeds, store, by_id, length, genres, max_per_artist, max_per_album, keep_copies, m3u, relative, as_json):
    """A listening list around SEEDs (files of the store or outside it, or ids with --id): their neighbours,
    no artist more than --max-per-artist times, near-duplicates collapsed, each step a small move."""
    from .search.playlists import playlist as make
    from .search.searcher import Searcher

    s = _run(Searcher, store)
    hits = _run(make, s, list(seeds), length=length, by_id=by_id, genres=genres, max_per_artist=max_per_artist or None,
                max_per_album=max_per_album or None, collapse=False if keep_copies else None)
    _emit_list(hits, m3u, relative, as_json)


@main.command()
@click.argument("start", metavar="A")
@click.argument("end", metavar="B")
@STORE_OPTION
@click.option("--id", "by_id", is_flag=True, help="A and B are track ids.")
@click.option("--steps", type=click.IntRange(1, 1000), default=8, show_default=True, help="Tracks between A and B, at most.")
@click.option("--genre", "genres", multiple=True, help="Only tracks of this genre in between (repeatable).")
@_list_output
def path(start, end, store, by_id, steps, genres, m3u, relative, as_json):
    """A sequence from track A to track B through the library, each step closer to B and no step a bigger move
    than going straight to B (scores: each track's cosine with the one before)."""
    from .search.playlists import path as make
    from .search.searcher import Searcher

    s = _run(Searcher, store)
    hits, figures = _run(make, s, start, end, steps=steps, by_id=by_id, genres=genres)
    _emit_list(hits, m3u, relative, as_json, {"smoothness": figures})
    if not as_json and m3u != "-":
        click.echo(f"steps {figures['steps']}; cosine distance of a step: mean {figures['mean_step_distance']}, "
                   f"largest {figures['max_step_distance']}; A to B directly {figures['direct_distance']}", err=True)


@main.command(name="map")
@STORE_OPTION
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="map.png (an image) or map.html (hover labels; click-to-play when served at /map).")
@click.option("--method", type=click.Choice(["auto", "pca", "tsne"]), default="auto", show_default=True,
              help="Layout: t-SNE up to 20,000 tracks (auto), else PCA.")
@click.option("--colour", "colour_by", type=click.Choice(["genre", "predicted"]), default="genre", show_default=True,
              help="Colour by the files' genre tags (else the predicted genre), or by the predicted genre.")
@JSON_OPTION
def map_(store, output, method, colour_by, as_json):
    """A 2-D map of the library, near tracks near each other, coloured by genre."""
    from .search import maps
    from .search.searcher import Searcher

    if not output.lower().endswith((".png", ".html")):
        raise UserError(f"{output}: the map is written as .png or .html")
    s = _run(Searcher, store)
    xy, hits, labels, figures = _run(maps.make_map, s, method=method, colour_by=colour_by)
    title = f"{os.path.basename(os.path.normpath(store))}: {figures['tracks']} tracks, {figures['method']}"
    if output.lower().endswith(".png"):
        _run(maps.write_png, output, xy, labels, title)
    else:
        with open(output, "w", encoding="utf-8") as f:
            f.write(maps.html(xy, hits, labels, title))
    figures["output"] = output
    if as_json:
        _echo_json(figures)
    else:
        click.echo(f"{output}: {figures['tracks']} tracks by {figures['method']}; "
                   f"{figures['neighbours_kept_at_10']:.0%} of each track's 10 nearest stay near it on the map")


# --------------------------------------------------------------------------------------------------- serve


@main.command()
@STORE_OPTION
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but loopback needs --token.")
@click.option("--port", type=click.IntRange(1, 65535), default=8731, show_default=True)
@click.option("--token", envvar="SOUNDALIKE_TOKEN", default=None,
              help="A secret every request must send in the X-Soundalike-Token header (env: SOUNDALIKE_TOKEN).")
@click.option("--subsonic-credentials", type=click.Path(dir_okay=False), default=None,
              help="A file of one line 'user:password' that turns on the Subsonic API under /rest/ [default: "
                   "SOUNDALIKE_SUBSONIC_USER and SOUNDALIKE_SUBSONIC_PASSWORD; neither set: /rest/ is off].")
def serve(store, host, port, token, subsonic_credentials):
    """The HTTP API over a store (OpenAPI description at /docs), and the Subsonic API for players when credentials
    are set. A commit by a running index is picked up without a restart."""
    try:
        from .search.service import serve as run_service
    except ImportError as err:
        raise UserError(f"the service needs FastAPI and uvicorn ({err.name} is missing): "
                        f"pip install 'soundalike[serve]'") from None
    from .catalog.store import read_manifest

    from .search.subsonic import credentials

    _run(read_manifest, store)  # a plain error for what is not a store, before anything starts
    subsonic = _run(credentials, subsonic_credentials)
    click.echo(f"serving {store} on http://{host}:{port} (API description: http://{host}:{port}/docs)", err=True)
    if subsonic:
        click.echo(f"Subsonic API for user {subsonic[0]}: point a Subsonic app at http://{host}:{port}", err=True)
    try:
        _run(run_service, store, host=host, port=port, token=token, subsonic=subsonic)
    except ValueError as err:
        raise UserError(str(err)) from None


# --------------------------------------------------------------------------------------------------- radio


@main.command()
@STORE_OPTION
@click.option("--mpd", "address", envvar="MPD_HOST", default="localhost:6600", show_default=True,
              help="MPD to keep going: HOST:PORT or a socket path (env: MPD_HOST).")
@click.option("--music-dir", type=click.Path(file_okay=False), default=None,
              help="MPD's music directory as this machine sees it [default: asked of MPD, else found from the "
                   "first song played].")
@click.option("--ahead", type=click.IntRange(1, 100), default=5, show_default=True,
              help="Songs kept queued after the one playing.")
@click.option("--seeds", type=click.IntRange(1, 20), default=3, show_default=True,
              help="The last songs of the queue the next ones should sound like.")
@click.option("--no-repeat", type=click.IntRange(1), default=50, show_default=True,
              help="No song played or queued within this many comes back.")
@click.option("--max-per-artist", type=click.IntRange(1), default=1, show_default=True,
              help="At most this many songs of one artist among the last --ahead of the queue.")
@click.option("--max-per-album", type=click.IntRange(1), default=1, show_default=True)
@click.option("--keep-tempo", type=click.FloatRange(0.01, 1.0), default=None,
              help="Only tracks within this share of the playing song's tempo (0.08: +-8%).")
@click.option("--keep-key", is_flag=True, help="Only tracks in a key that mixes with the playing song's.")
@JSON_OPTION
def radio(store, address, music_dir, ahead, seeds, no_repeat, max_per_artist, max_per_album, keep_tempo, keep_key,
          as_json):
    """Sound-alike radio for MPD: keep its queue --ahead songs ahead with tracks like the last ones queued, until
    Ctrl-C (MPD restarting is waited out). The password, if MPD wants one, comes from MPD_PASSWORD."""
    import importlib.util

    if importlib.util.find_spec("mpd") is None:
        raise UserError("radio needs python-mpd2: pip install 'soundalike[radio]'")
    from .search.radio import Radio, RadioOptions, parse_address

    try:
        where = parse_address(address)
    except ValueError as err:
        raise UserError(str(err)) from None

    def log(event: dict) -> None:
        if as_json:
            click.echo(json.dumps(event))
        elif event["event"] == "queued":
            click.echo(f"queued {len(event['tracks'])}: " + ", ".join(os.path.basename(t) for t in event["tracks"]))
        elif event["event"] == "stopped":
            click.echo(f"stopped ({event['added']} songs queued)", err=True)
        else:
            click.echo(" ".join(f"{v}" for v in event.values()), err=True)

    options = RadioOptions(ahead=ahead, seeds=seeds, no_repeat=no_repeat, max_per_artist=max_per_artist,
                           max_per_album=max_per_album, keep_tempo=keep_tempo, keep_key=keep_key)
    r = _run(Radio, store, where, options=options, music_dir=music_dir, password=os.environ.get("MPD_PASSWORD"),
             log=log)
    _run(r.run)


# ---------------------------------------------------------------------------------------------------- demo


@main.command()
@click.option("--dir", "workdir", type=click.Path(file_okay=False), default="soundalike-demo", show_default=True,
              help="Where the synthetic library, the model and the store go.")
@click.option("--per-style", type=click.IntRange(4), default=16, show_default=True, help="Tracks per style.")
@click.option("--seconds", type=click.FloatRange(4.0), default=20.0, show_default=True, help="Length of each track.")
@click.option("--epochs", type=click.IntRange(1), default=25, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def demo(workdir, per_style, seconds, epochs, as_json):
    """Synthesise a small library of distinct styles, train the seed CNN, index it all and search it."""
    from .demo.run import run_demo

    summary = _run(run_demo, workdir, per_style=per_style, seconds=seconds, epochs=epochs,
                   echo=(lambda m: click.echo(m, err=True)) if as_json else click.echo)
    if as_json:
        _echo_json(summary)


if __name__ == "__main__":
    main()
