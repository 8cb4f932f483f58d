"""Encoding throughput of logitlens's tokenizer against Hugging Face `tokenizers` (single-threaded),
on the same ~10 MB of generated multilingual text, one input per line, for the GPT-2, Llama-3 and
SentencePiece families of the tests. Runs alternate A B A B; medians are reported. Only the encode
calls are timed on both sides (logitlens: `tokenize --batch --stats`; tokenizers: encode_batch).

usage: python3 bench/tokenizer/bench.py [--mb 10] [--reps 3] [--families gpt2,llama3,sentencepiece]
                                        [--write-readme]
LOGITLENS_BIN selects the binary (default build/logitlens)."""
import argparse
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import tokenizers  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

from tokenizer import corpus, families  # noqa: E402


def ours(binary, directory, path):
    p = subprocess.run([binary, "tokenize", directory, "--batch", path, "--hex", "--stats"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, check=True)
    m = re.search(r"bytes, (\d+) ids in ([0-9.]+) s", p.stderr.decode())
    return float(m.group(2)), int(m.group(1))


def theirs(tok, lines):
    # encode_batch_fast (tokenizers >= 0.21) skips offset tracking: the fastest way to get ids.
    fn = getattr(tok, "encode_batch_fast", tok.encode_batch)
    t = time.perf_counter()
    enc = fn(lines, add_special_tokens=True)
    return time.perf_counter() - t, sum(len(e.ids) for e in enc)


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--families", default="gpt2,llama3,sentencepiece")
    ap.add_argument("--write-readme", action="store_true")
    a = ap.parse_args()
    binary = os.environ.get("LOGITLENS_BIN", os.path.join(ROOT, "build", "logitlens"))
    text = corpus.bench_text(2024, int(a.mb * 1e6))
    lines = text.split("\n")[:-1]
    n_bytes = sum(len(s.encode()) for s in lines)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "text.hex")
        with open(path, "w") as f:
            for s in lines:
                f.write(s.encode().hex() + "\n")
        for fam in a.families.split(","):
            d = os.path.join(tmp, fam)
            tok = families.save(fam, d)
            ta, tb = [], []
            for _ in range(a.reps):
                s, n_ours = ours(binary, d, path)
                ta.append(s)
                s, n_theirs = theirs(tok, lines)
                tb.append(s)
            if n_ours != n_theirs:
                sys.exit("bench: %s: logitlens produced %d ids, tokenizers %d" % (fam, n_ours, n_theirs))
            ma, mb = statistics.median(ta), statistics.median(tb)
            rows.append((fam, n_ours, n_bytes / ma / 1e6, n_bytes / mb / 1e6, mb / ma))
            print("%-14s %9d ids  logitlens %7.2f MB/s  tokenizers %7.2f MB/s  ratio %.2fx" % rows[-1], flush=True)
    if a.write_readme:
        write_readme(rows, n_bytes, len(lines), a.reps)


def write_readme(rows, n_bytes, n_lines, reps):
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "host/tokenizer", "host/cli/cli_tokenize.c"],
                               capture_output=True, text=True).stdout.strip()
        if dirty:
            commit += " + uncommitted tokenizer changes"
    except OSError:
        commit = "unknown"
    table = ["| family | ids | logitlens MB/s | tokenizers MB/s | ratio |", "|---|---:|---:|---:|---:|"]
    for fam, n, x, y, r in rows:
        table.append("| %s | %d | %.2f | %.2f | %.2fx |" % (fam, n, x, y, r))
    section = "\n".join([
        "## Results",
        "",
        "Machine: %s, %d logical CPUs (shared), %s. Date: %s. Commit: %s. tokenizers %s (RAYON_NUM_THREADS=1, "
        "TOKENIZERS_PARALLELISM=false), Python %s." % (cpu_name(), os.cpu_count() or 0, platform.platform(),
                                                       datetime.date.today().isoformat(), commit,
                                                       tokenizers.__version__, platform.python_version()),
        "",
        "Text: %.1f MB of generated multilingual text, %d lines (one input per line); medians of %d alternating "
        "runs; only encode calls timed (tokenizers: %s); ratio = logitlens / tokenizers throughput." % (n_bytes / 1e6, n_lines, reps,
            "encode_batch_fast" if hasattr(Tokenizer, "encode_batch_fast") else "encode_batch"),
        "",
    ] + table) + "\n"
    path = os.path.join(HERE, "README.md")
    old = open(path).read() if os.path.exists(path) else ""
    head = old.split("## Results")[0].rstrip() + "\n\n" if old else "# Tokenizer benchmark\n\n"
    open(path, "w").write(head + section)


if __name__ == "__main__":
    main()
