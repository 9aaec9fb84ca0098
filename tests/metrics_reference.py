#!/usr/bin/python3
"""Dev-time reference values for tests/metrics_test.cc and tests/data_test.cc (not run by CI).

Needs Debian's python3-numpy, python3-scipy, python3-sklearn. Re-implements PortableRng
(std::mt19937_64 + Lemire's bounded draw + partial Fisher-Yates) so the seeded subsets, bootstrap
and permutation results of the C++ code can be reproduced exactly.
"""
import sys
import numpy as np
from scipy import stats
from sklearn import metrics as skm

M64 = (1 << 64) - 1


class PortableRng:
    """std::mt19937_64 (C++ [rand.eng.mers]) + Lemire's unbiased bounded draw."""

    def __init__(self, seed):
        self.mt = [0] * 312
        self.mt[0] = seed & M64
        for i in range(1, 312):
            prev = self.mt[i - 1]
            self.mt[i] = (6364136223846793005 * (prev ^ (prev >> 62)) + i) & M64
        self.idx = 312

    def next(self):
        if self.idx >= 312:
            for i in range(312):
                x = (self.mt[i] & 0xFFFFFFFF80000000) | (self.mt[(i + 1) % 312] & 0x7FFFFFFF)
                xa = x >> 1
                if x & 1:
                    xa ^= 0xB5026F5AA96619E9
                self.mt[i] = self.mt[(i + 156) % 312] ^ xa
            self.idx = 0
        y = self.mt[self.idx]
        self.idx += 1
        y ^= (y >> 29) & 0x5555555555555555
        y ^= (y << 17) & 0x71D67FFFEDA60000 & M64
        y ^= (y << 37) & 0xFFF7EEE000000000 & M64
        y ^= y >> 43
        return y

    def below(self, n):
        m = self.next() * n
        low = m & M64
        if low < n:
            t = ((1 << 64) - n) % n
            while low < t:
                m = self.next() * n
                low = m & M64
        return m >> 64

    def sample(self, n, k):
        perm = list(range(n))
        for i in range(k):
            j = i + self.below(n - i)
            perm[i], perm[j] = perm[j], perm[i]
        return perm[:k]


def check_engine():
    r = PortableRng(5489)
    for _ in range(9999):
        r.next()
    assert r.next() == 9981545732273789042  # the C++ standard's check value


def spearman(s, l):
    return stats.spearmanr(s, l).correlation


def extreme(x, obs):
    return abs(x) >= abs(obs) - 1e-12 * max(1.0, abs(obs))


def bootstrap_ci(s, l, metric, B, seed, level=0.95):
    s, l = np.asarray(s), np.asarray(l)
    rng, n, vals, undefined = PortableRng(seed), len(s), [], 0
    for _ in range(B):
        idx = [rng.below(n) for _ in range(n)]
        v = metric(s[idx], l[idx])
        if np.isnan(v):
            undefined += 1
        else:
            vals.append(v)
    return (np.percentile(vals, 50 * (1 - level)), np.percentile(vals, 50 * (1 + level)),
            undefined)


def paired_bootstrap(a, b, l, metric, B, seed, level=0.95):
    a, b, l = np.asarray(a), np.asarray(b), np.asarray(l)
    d0 = metric(a, l) - metric(b, l)
    rng, n, ds, undefined, ext = PortableRng(seed), len(a), [], 0, 0
    for _ in range(B):
        idx = [rng.below(n) for _ in range(n)]
        d = metric(a[idx], l[idx]) - metric(b[idx], l[idx])
        if np.isnan(d):
            undefined += 1
            continue
        ds.append(d)
        ext += extreme(d - d0, d0)
    return (d0, np.percentile(ds, 50 * (1 - level)), np.percentile(ds, 50 * (1 + level)),
            ext / len(ds), undefined)


def paired_permutation(a, b, l, metric, P, seed):
    a, b, l = np.asarray(a), np.asarray(b), np.asarray(l)
    d0 = metric(a, l) - metric(b, l)
    rng, n, ext, defined, undefined = PortableRng(seed), len(a), 0, 0, 0
    for _ in range(P):
        swap = np.array([(rng.next() >> 63) == 1 for _ in range(n)])
        pa, pb = np.where(swap, b, a), np.where(swap, a, b)
        d = metric(pa, l) - metric(pb, l)
        if np.isnan(d):
            undefined += 1
            continue
        defined += 1
        ext += extreme(d, d0)
    return d0, (1 + ext) / (1 + defined), undefined


def main():
    np.seterr(all="ignore")
    import warnings
    warnings.simplefilter("ignore")
    check_engine()
    p = lambda name, v: print(f"{name} = {v!r}")

    # Case A: binary labels (all ties) and tied scores.
    s = [0.9, 0.8, 0.8, 0.7, 0.6, 0.6, 0.6, 0.5, 0.4, 0.3, 0.3, 0.1]
    l = [1, 1, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0]
    p("A rankdata(s)", list(stats.rankdata(s)))
    p("A spearman", spearman(s, l))
    p("A pearson", stats.pearsonr(s, l)[0])
    p("A roc_auc", skm.roc_auc_score(l, s))
    p("A average_precision", skm.average_precision_score(l, s))
    # Case B: continuous, ties on both sides.
    x = [1, 2, 2, 3, 4, 4, 4, 5]
    y = [2.5, 1.0, 3.0, 3.0, 4.5, 2.0, 5.0, 5.0]
    p("B spearman", spearman(x, y))
    p("B pearson", stats.pearsonr(x, y)[0])
    p("B negated spearman", spearman(x, [-v for v in y]))
    # Degenerate: constant scores / all-ties labels.
    p("C spearman constant scores", spearman([0.5] * 4, [0, 1, 0, 1]))
    p("C spearman all-ones labels", spearman([0.1, 0.2, 0.3], [1, 1, 1]))
    p("C average_precision all positive", skm.average_precision_score([1, 1, 1], [0.1, 0.2, 0.2]))
    # Classification at a threshold, and its sklearn counterparts.
    t = 0.65
    pred = [int(v >= t) for v in s]
    p("A@0.65 acc/prec/rec/f1", (skm.accuracy_score(l, pred), skm.precision_score(l, pred),
                                 skm.recall_score(l, pred), skm.f1_score(l, pred)))
    # Summary and percentile.
    v = [0.31, 0.29, 0.35, 0.30, 0.28]
    p("summary mean/sd", (np.mean(v), np.std(v, ddof=1)))
    p("percentile 2.5/97.5/50", (np.percentile(v, 2.5), np.percentile(v, 97.5), np.percentile(v, 50)))
    # Resampling with PortableRng.
    sb = [0.7, 0.9, 0.2, 0.6, 0.65, 0.3, 0.5, 0.8, 0.1, 0.4, 0.45, 0.35]
    p("A bootstrap spearman B=200 seed=7 (lo, hi, undefined)", bootstrap_ci(s, l, spearman, 200, 7))
    p("A bootstrap roc_auc B=300 seed=3 (lo, hi, undefined)",
      bootstrap_ci(s, l, lambda a, b: skm.roc_auc_score(b, a) if 0 < sum(b) < len(b) else np.nan,
                   300, 3))
    p("A paired bootstrap spearman(s) - spearman(sb) B=200 seed=11",
      paired_bootstrap(s, sb, l, spearman, 200, 11))
    p("A paired permutation spearman(s) - spearman(sb) P=500 seed=5",
      paired_permutation(s, sb, l, spearman, 500, 5))
    p("first draws seed 42 below(10)", [PortableRng(42).below(10) for _ in range(1)])
    r = PortableRng(42)
    p("seed 42 below(10) x8", [r.below(10) for _ in range(8)])

    if len(sys.argv) > 1:  # MRPC train.tsv: ids of the seeded train-1000 subsets
        rows = open(sys.argv[1], encoding="utf-8-sig").read().split("\n")[1:-1]
        ids = [r.split("\t")[1] + "-" + r.split("\t")[2] for r in rows]
        for seed in (0, 1):
            chosen = sorted(PortableRng(seed).sample(len(ids), 1000))
            p(f"train-1000 seed {seed} first five ids", [ids[i] for i in chosen[:5]])
            p(f"train-1000 seed {seed} last id", ids[chosen[-1]])


main()
