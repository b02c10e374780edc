"""A sketch of an inverted-list track index that a serving process keeps in memory: every vector again as a
4-bit product code (FAISS's fast-scan codes, scanned sixteen at a time with SIMD), over the index's own lists.
A query scans the sketch's codes of the lists it probes for CANDIDATES times the answers it wants, then ranks
those by the index's 8-bit codes, so it answers what the 8-bit index answers at the same nprobe, faster.

Why: at a million tracks the default store's whitened vectors spread a query's neighbours over many lists
(about 150 of 2048 for recall@10 0.95), and scanning that many 8-bit codes took 3.3 ms in FAISS (3.8-4.9 ms a
query in the store). The sketch scans a quarter of the bytes with table lookups: 1.1 ms (1.7-1.9) for the same
answers (docs/scale.md). Its 4-bit codes alone find only 0.59 of the neighbours; the 8-bit ranking of 16
candidates an answer restores them.

A filter's nearest lie in more lists (nprobe 209 at a million tracks), and the whole sketch scans every code
of them, the filter's or not. A filter a service searches with again gets a narrowed sketch of only its tracks
(:meth:`Sketch.narrowed`: the same codebooks, the same lists), whose scan is the filter's share of the work.

Nothing is written: the sketch is made from the index's lists (the 8-bit codes decoded, then encoded again,
about 6 s at a million tracks on two cores, in a background thread) and dropped when the index changes. A
one-query process never makes one; a service does when it opens a generation (``Searcher.warm_up``).
Memory: 80 bytes and an id a track (width 320) and each id's place (two 4-byte ints, the map the index's own
lookups share): 96 MB at a million tracks; filters' narrowed sketches at most as many tracks again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

CANDIDATES = 16  # candidates the sketch shortlists for each answer wanted (at 8, recall@10 fell 0.02)
#: answers wanted at most; more go to the 8-bit codes: the shortlist is ranked a candidate at a time in NumPy, and a
#: hub-aware ranking's pool of 256 (4,096 candidates) took 6.2 ms at a million tracks, against 2.2 by the codes
MAX_K = 32
TRAIN_VECTORS = 65_536  # vectors the product quantiser is trained on (from whole lists picked at random)
#: smaller indexes take no sketch: its fixed cost a query (the shortlist's ranking in NumPy, ~0.1 ms) is what
#: their whole scan costs (20,000 tracks: 0.15 ms by the 8-bit codes, 0.22 with a sketch)
MIN_TRACKS = 100_000
NARROW_FRACTION = 0.5  # a filter of at most this share of the tracks takes a narrowed sketch of its own
NARROWED_KEPT = 16  # narrowed sketches kept at most (as many as a service keeps filters' bitmaps)


def usable(ivf) -> bool:
    """Whether ``ivf`` (a FAISS inverted-list index) takes a sketch: 8-bit codes of the vectors themselves
    (not of residuals), in memory, more than one list and at least MIN_TRACKS vectors."""
    import faiss

    return (isinstance(ivf, faiss.IndexIVFScalarQuantizer) and ivf.sq.qtype == faiss.ScalarQuantizer.QT_8bit
            and not ivf.by_residual and ivf.nlist > 1 and ivf.ntotal >= max(MIN_TRACKS, 1)
            and not isinstance(faiss.downcast_InvertedLists(ivf.invlists), faiss.OnDiskInvertedLists))


def _fast_scan(quantizer, d: int, nlist: int, m: int):
    """An empty fast-scan index: ``m`` 4-bit codes a vector, in blocks of 32, over ``quantizer``'s lists (not owned)."""
    import faiss

    return faiss.IndexIVFPQFastScan(quantizer, d, nlist, m, 4, faiss.METRIC_INNER_PRODUCT, 32)


class Sketch:
    """Made from one inverted-list index of 8-bit codes (:func:`usable`), which must not change while the
    sketch is used (a :class:`catalog.indexes.TrackIndex` drops its sketch on any change)."""

    def __init__(self, ivf, where: tuple[np.ndarray, np.ndarray], *, seed: int = 0, keep=None):
        """``where``: each id's list and place in it, as dense arrays by id (``catalog.indexes.id_positions``: the
        map the index's own lookups use). ``keep``: what owns the index's memory (a downcast FAISS view does
        not), held for as long as the sketch is: it reads the lists whenever it makes a filter's sketch, in a
        thread that can outlive the searcher that asked."""
        import faiss

        self._keep = (ivf, keep)
        d = ivf.d
        trained = faiss.vector_to_array(ivf.sq.trained)
        self.vmin, self.step = trained[:d].astype(np.float32), (trained[d:] / 255.0).astype(np.float32)
        inv = ivf.invlists
        self.codes, ids = [], []
        for lst in range(ivf.nlist):  # views of the lists as they are (an index that changes drops its sketch)
            n = inv.list_size(lst)
            self.codes.append(faiss.rev_swig_ptr(inv.get_codes(lst), n * ivf.code_size).reshape(n, ivf.code_size)
                              if n else np.zeros((0, ivf.code_size), np.uint8))
            ids.append(faiss.rev_swig_ptr(inv.get_ids(lst), n).astype(np.int64) if n else np.zeros(0, np.int64))
        self.where_list, self.where_at = where
        m = d // 2 if d % 2 == 0 else d  # two dimensions a 4-bit code (one when the width is odd)
        # the index's own coarse quantiser: the same lists, so that an nprobe means what it means for the index
        self.fast = _fast_scan(ivf.quantizer, d, ivf.nlist, m)
        rng = np.random.default_rng(seed)
        sample, held = [], 0
        for lst in rng.permutation(ivf.nlist):
            if held >= TRAIN_VECTORS:
                break
            sample.append(self.decode(self.codes[lst]))
            held += len(sample[-1])
        self.fast.train(np.ascontiguousarray(np.concatenate(sample)))
        self._fill(self.fast, ((lst, self.codes[lst], ids[lst]) for lst in range(ivf.nlist)))
        self._lock = threading.Lock()
        self._narrowed: OrderedDict[int, tuple[np.ndarray, object]] = OrderedDict()  # id(bits) -> (bits, sketch)
        self._seen: OrderedDict[int, np.ndarray] = OrderedDict()  # bitmaps searched with once, by id
        self._narrowing: threading.Thread | None = None

    def _fill(self, fast, parts) -> None:
        """Put ``parts`` ((list, 8-bit codes, ids) each, every list once) into the empty ``fast``: each list's
        vectors decoded, encoded as 4-bit codes and packed into that list's blocks, so the sketch's lists are the
        index's. (FAISS's own ``add_with_ids`` assigns every vector to a list again, most of the work, and
        ``add_core``, which takes the lists, wrote unreadable codes in FAISS 1.15: the blocks are packed here with
        its code packer, one block of ``bbs`` codes at a time.)"""
        import faiss

        packer, inv = fast.get_CodePacker(), faiss.downcast_InvertedLists(fast.invlists)
        per, size, added = packer.nvec, packer.block_size, 0
        for lst, codes, ids in parts:
            n = len(ids)
            if not n:
                continue
            x = np.ascontiguousarray(self.decode(codes))
            blocks = -(-n // per)
            flat = np.zeros((blocks * per, fast.code_size), np.uint8)
            listnos = np.full(n, lst, np.int64)
            fast.encode_vectors(n, faiss.swig_ptr(x), faiss.swig_ptr(listnos), faiss.swig_ptr(flat), False)
            inv.resize(lst, n)
            packed = faiss.rev_swig_ptr(inv.get_codes(lst), blocks * size)
            for b in range(blocks):
                packer.pack_all(faiss.swig_ptr(flat[b * per:]), faiss.swig_ptr(packed[b * size:]))
            faiss.rev_swig_ptr(inv.get_ids(lst), n)[:] = ids
            added += n
        fast.ntotal += added

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """8-bit codes ``[n, d]`` -> the vectors they stand for (FAISS's decoding of its 8-bit codes)."""
        return self.vmin + (codes.astype(np.float32) + 0.5) * self.step

    @property
    def nbytes(self) -> int:
        with self._lock:
            held = [self.fast] + [sub for _, sub in self._narrowed.values() if sub is not None]
        codes = sum(f.invlists.list_size(lst) * (f.code_size + 8) for f in held for lst in range(f.nlist))
        return int(codes + self.where_list.nbytes + self.where_at.nbytes)

    # -- narrowed sketches: a filter's own ------------------------------------------------------------------
    def narrowed(self, bits: np.ndarray):
        """The sketch of only the ids the packed bitmap ``bits`` selects (by id, little-endian bits, as FAISS's
        ``IDSelectorBitmap`` reads it), or None while there is none. A filter's nearest lie in more lists than a
        query's (nprobe 209 against 152 at a million tracks), and the whole sketch scans every code of them; the
        filter's own holds only its tracks (0.5 ms against 2.1 for a 10% filter). Made in a background thread
        the second time the same array is searched with (a service keeps each filter's bitmap, ``search.filters``;
        a one-off mask takes none), for a filter of at most NARROW_FRACTION of the tracks; kept, the least
        recently used dropped first, while they hold no more tracks than the sketch itself."""
        key = id(bits)  # (the arrays are held here, so an id is not reused while it is a key)
        with self._lock:
            hit = self._narrowed.get(key)
            if hit is not None and hit[0] is bits:
                self._narrowed.move_to_end(key)
                return hit[1]
            if self._seen.get(key) is not bits:
                self._seen[key] = bits
                while len(self._seen) > NARROWED_KEPT:
                    self._seen.popitem(last=False)
                return None
            if self._narrowing is None or not self._narrowing.is_alive():
                self._narrowing = threading.Thread(target=self._narrow, args=(bits,), name="soundalike-narrow", daemon=True)
                self._narrowing.start()
        return None

    def _narrow(self, bits: np.ndarray) -> None:
        ids = np.flatnonzero(np.unpackbits(bits, bitorder="little"))
        ids = ids[ids < len(self.where_list)]
        ids = ids[self.where_list[ids] >= 0]
        sub = None
        if len(ids) <= NARROW_FRACTION * self.fast.ntotal:
            lists = self.where_list[ids]
            order = np.argsort(lists, kind="stable")
            ids, lists = ids[order].astype(np.int64), lists[order]
            at, bounds = self.where_at[ids], np.searchsorted(lists, np.arange(self.fast.nlist + 1))
            try:
                # the same codebooks over the same coarse quantiser (shared: the index owns it), none of the codes
                sub = _fast_scan(self.fast.quantizer, self.fast.d, self.fast.nlist, self.fast.pq.M)
                sub.pq, sub.by_residual, sub.is_trained = self.fast.pq, self.fast.by_residual, True
                self._fill(sub, ((lst, self.codes[lst][at[a:b]], ids[a:b])
                                 for lst, (a, b) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist()))))
            except (MemoryError, RuntimeError):  # (the filter is then scanned in the whole sketch, as before)
                sub = None
        with self._lock:
            self._seen.pop(id(bits), None)
            self._narrowed[id(bits)] = (bits, sub)
            while len(self._narrowed) > 1 and (
                    len(self._narrowed) > NARROWED_KEPT
                    or sum(s.ntotal for _, s in self._narrowed.values() if s is not None) > self.fast.ntotal):
                self._narrowed.popitem(last=False)

    def wait(self) -> None:
        """Until a narrowed sketch being made is made (it reads the index's lists)."""
        thread = self._narrowing
        if thread is not None:
            thread.join()

    def search(self, q: np.ndarray, k: int, selector=None, nprobe: int = 1,
               within: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the ``k`` best of each row of ``q`` as the 8-bit index scores them, among the
        sketch's CANDIDATES * k best in the ``nprobe`` nearest lists (only ids ``selector`` selects). ``within``:
        the packed bitmap ``selector`` reads, if it is one (its narrowed sketch is scanned once made)."""
        import faiss

        fast = self.fast if within is None else (self.narrowed(within) or self.fast)
        params = faiss.SearchParametersIVF(sel=selector, nprobe=int(nprobe))
        _, cand = fast.search(np.ascontiguousarray(q, dtype=np.float32), CANDIDATES * k, params=params)
        scores = np.full((len(q), k), -np.finfo(np.float32).max, np.float32)
        out = np.full((len(q), k), -1, np.int64)
        for r, row in enumerate(cand):
            row = row[row >= 0]
            if not len(row):
                continue
            lists, at = self.where_list[row], self.where_at[row]
            codes = np.stack([self.codes[lst][i] for lst, i in zip(lists.tolist(), at.tolist())])
            s = self.decode(codes) @ q[r]
            best = np.argsort(-s, kind="stable")[:k]
            scores[r, : len(best)], out[r, : len(best)] = s[best], row[best]
        return scores, out
