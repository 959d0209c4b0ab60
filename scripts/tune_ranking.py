#!/usr/bin/env python3
"""Offline model of /search's ranking on LoCoMo, for choosing its weights quickly.

The product's recall is measured by `memory-service-bench recall` (the numbers that
count). This script re-implements the same features in numpy so a grid of weights runs
in seconds instead of a benchmark run each: word coverage, BM25 (Okapi, k1 1.2, b 0.75,
Snowball stems; FTS5 uses Porter, so figures differ by about 0.01), BM25 smoothed with
the neighbouring turns, cosine (own 0.75 + neighbours 0.25, mapped from [0.15, 0.70]),
top-N candidates per channel, and the context prior (best own score within W turns).

    pip install numpy snowballstemmer
    scripts/fetch-test-model.sh
    scripts/tune_ranking.py --data ../shared/data/locomo [--global-idf]

Embeddings come from `cargo run --release -p memory-embedding --example embed_lines`
(run by this script, cached under target/tune-ranking/). Prints recall@5 and @10 per
category for the shipped weights and a few neighbours of them.
"""
import argparse, glob, json, math, os, re, subprocess, unicodedata
import numpy as np
import snowballstemmer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STOP = set("""a an and are as at be but by for if in into is it no not of on or such that
the their then there these they this to was will with what when where which who whom why
how did do does has have had i me my we our you your he him his she her its them been
were would could should can about from so than too very just also some any all""".split())
ST = snowballstemmer.stemmer("english")


def toks(s):
    s = unicodedata.normalize("NFKD", s.lower())
    s = "".join(c for c in s if not unicodedata.combining(c))
    return re.findall(r"[a-z0-9]+", s)


def load(data):
    turns, qs = [], []
    for f in sorted(glob.glob(os.path.join(data, "*.json"))):
        d = json.load(open(f))
        conv = d.get("conversation", d)
        cid = d.get("sample_id", os.path.basename(f)[:-5])
        ids = {}
        for n in sorted(int(k[8:]) for k in conv if re.fullmatch(r"session_\d+", k)):
            for i, t in enumerate(conv[f"session_{n}"]):
                c = f"{t['speaker']}: {t['text']}"
                if (t.get("blip_caption") or "").strip():
                    c += f" [shares {t['blip_caption']}]"
                ids[t["dia_id"]] = len(turns)
                turns.append(dict(conv=cid, session=n, idx=i, text=c))
        for q in d["qa"]:
            if q.get("category") not in (1, 2, 3, 4):
                continue
            ev = []
            for e in q.get("evidence", []):
                for x in e.split(";"):
                    x = x.strip()
                    if x in ids and ids[x] not in ev:
                        ev.append(ids[x])
            if ev:
                qs.append(dict(conv=cid, q=q["question"], cat=q["category"], ev=ev))
    return turns, qs


def embed(texts, name):
    out_dir = os.path.join(ROOT, "target", "tune-ranking")
    os.makedirs(out_dir, exist_ok=True)
    src, dst = os.path.join(out_dir, name + ".txt"), os.path.join(out_dir, name + ".f32")
    body = "\n".join(t.replace("\n", "\\n") for t in texts) + "\n"
    if not (os.path.exists(dst) and os.path.exists(src) and open(src).read() == body):
        open(src, "w").write(body)
        subprocess.run(["cargo", "run", "-q", "--release", "-p", "memory-embedding",
                        "--example", "embed_lines", "--", src, dst], cwd=ROOT, check=True)
    return np.fromfile(dst, dtype="<f4").reshape(len(texts), -1)


class BM25:
    def __init__(self, docs, k1=1.2, b=0.75):
        self.tf = [{} for _ in docs]
        self.df = {}
        for j, d in enumerate(docs):
            for w in d:
                self.tf[j][w] = self.tf[j].get(w, 0) + 1
            for w in set(d):
                self.df[w] = self.df.get(w, 0) + 1
        self.n, self.k1, self.b = len(docs), k1, b
        self.len = np.array([len(d) for d in docs], float)
        self.avg = self.len.mean()

    def score(self, terms, rows):
        s = np.zeros(len(rows))
        for w in set(terms):
            n = self.df.get(w, 0)
            if not n:
                continue
            idf = max(math.log((self.n - n + 0.5) / (n + 0.5)), 1e-6)
            tf = np.array([self.tf[r].get(w, 0) for r in rows], float)
            s += idf * tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * self.len[rows] / self.avg))
        return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--global-idf", action="store_true",
                    help="IDF over every conversation at once, as FTS5 does in one store")
    a = ap.parse_args()
    turns, qs = load(a.data)
    V = embed([t["text"] for t in turns], "turns")
    QV = embed([q["q"] for q in qs], "questions")
    docs = [[ST.stemWord(w) for w in toks(t["text"])] for t in turns]
    convs = sorted({t["conv"] for t in turns})
    rows_of = {c: np.array([i for i, t in enumerate(turns) if t["conv"] == c]) for c in convs}
    if a.global_idf:
        g = BM25(docs)
        index = {c: (g, rows_of[c]) for c in convs}
    else:
        index = {c: (BM25([docs[i] for i in rows_of[c]]), np.arange(len(rows_of[c]))) for c in convs}
    same = lambda i, j: 0 <= j < len(turns) and turns[j]["conv"] == turns[i]["conv"] and turns[j]["session"] == turns[i]["session"]
    pre = []
    for q in qs:
        ids = rows_of[q["conv"]]
        ws = toks(q["q"])
        content = [w for w in ws if w not in STOP] or ws
        terms = [ST.stemWord(w) for w in content]
        bm25, rows = index[q["conv"]]
        tset = set(terms)
        cov = np.array([len(tset & set(docs[i])) / max(len(tset), 1) for i in ids])
        pre.append(dict(ids=ids, bm=bm25.score(terms, rows), cov=cov))
    pos_cache = {}

    def rank(qi, a_=.3, b_=.3, c_=.5, own=.75, own_bm=.5, ctx=.75, window=3, ncand=200, text_only=False):
        p, q = pre[qi], QV[qi]
        ids = p["ids"]
        pos = pos_cache.setdefault(qi, {g: j for j, g in enumerate(ids)})
        cv = V[ids] @ q
        bm = p["bm"]
        cand_b = np.zeros(len(ids), bool)
        cand_b[np.argsort(-bm)[:ncand]] = True
        cand_b &= bm > 0
        cand = cand_b.copy()
        if not text_only:
            cand[np.argsort(-cv)[:ncand]] = True
        bmk = bm * cand_b
        near_bm = np.array([sum(bmk[pos[k]] for k in (g - 1, g + 1) if same(g, k)) / 2 for g in ids])
        sb = own_bm * bmk + (1 - own_bm) * near_bm
        sb = sb / max(sb.max(), 1e-9)
        near_cv = np.array([np.mean([cv[pos[k]] for k in (g - 1, g + 1) if same(g, k)] or [cv[pos[g]]]) for g in ids])
        sem = np.clip((own * cv + (1 - own) * near_cv - .15) / .55, 0, 1)
        w = (a_, b_, 0.0) if text_only else (a_, b_, c_)
        s = (w[0] * p["cov"] + w[1] * sb + w[2] * sem) / sum(w)
        s = np.where(cand, s, 0)
        best = np.array([max(s[pos[k]] for k in range(g - window, g + window + 1) if same(g, k)) for g in ids])
        final = (s + ctx * best) / (1 + ctx)
        return ids[np.argsort(-np.where(cand, final, -1), kind="stable")]

    def report(name, **kw):
        res = {k: {c: [] for c in range(5)} for k in (5, 10)}
        for qi, q in enumerate(qs):
            order = rank(qi, **kw)
            for k in (5, 10):
                r = len(set(q["ev"]) & set(order[:k])) / len(q["ev"])
                res[k][q["cat"]].append(r)
                res[k][0].append(r)
        cells = " ".join(f"R@{k} {np.mean(res[k][0]):.3f} [" + " ".join(f"{np.mean(res[k][c]):.3f}" for c in (1, 2, 3, 4)) + "]" for k in (5, 10))
        print(f"{name:34s} {cells}")

    print(f"{len(turns)} turns, {len(qs)} questions; IDF {'over all conversations' if a.global_idf else 'per conversation'}; [multi-hop temporal open-domain single-hop]")
    report("shipped (search.rs HYBRID)")
    report("shipped, text only (TEXT_ONLY)", a_=.5, b_=.5, text_only=True)
    report("no context prior", ctx=0)
    report("no BM25 smoothing", own_bm=1.0)
    report("window 2", window=2)
    report("window 4", window=4)
    report("100 candidates", ncand=100)


if __name__ == "__main__":
    main()
