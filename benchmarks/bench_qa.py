"""Question/answer derivation speed and passage search latency, on notes made from Python's reference docs.

The notes: every pydoc topic as a markdown section (``## topic`` + its text), repeated with numbered headings
until there is --mb of text. derive_pairs runs over all of it (best of 3); the passage index is built from the
first --passages passages, then answers "What is <topic>?" for every topic plus random three-word queries.

    python benchmarks/bench_qa.py [--mb 1] [--passages 5000] [--queries 2000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from gpt.passages import passages_of
from gpt.qa import derive_pairs
from gpt.retrieval import PassageIndex, words


def notes(megabytes: float) -> str:
    from pydoc_data.topics import topics
    parts, size, round_ = [], 0, 0
    while size < megabytes * 1e6:
        for name in sorted(topics):
            part = f"## {name} {round_}\n\n{topics[name]}\n"
            parts.append(part)
            size += len(part.encode())
        round_ += 1
    return "".join(parts)[:int(megabytes * 1e6)]


def topic_of_line(text: str) -> list[str]:
    """For each line of the notes, the topic whose "## topic N" section holds it (the topic's own reST headings
    inside the section are the passages' titles, so a passage's text does not start with the topic's name)."""
    topic, found = "", []
    for line in text.split("\n"):
        if line.startswith("## "):
            topic = line[3:].rsplit(" ", 1)[0]
        found.append(topic)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=1.0)
    parser.add_argument("--passages", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    text = notes(args.mb)
    mb = len(text.encode()) / 1e6
    times = []
    for _ in range(3):
        start = time.perf_counter()
        pairs = derive_pairs(text, "notes.md")
        times.append(time.perf_counter() - start)
    kinds = {k: sum(p.kind == k for p in pairs) for k in ("heading", "glossary", "faq", "definition")}
    print(f"derive_pairs: {mb:.2f} MB in {min(times):.3f} s ({mb / min(times):.1f} MB/s), {len(pairs)} pairs {kinds}")

    start = time.perf_counter()
    passages = passages_of(text, "notes.md")[:args.passages]
    index = PassageIndex(passages)
    print(f"index: {len(passages)} passages ({sum(len(p.text) for p in passages) / 1e6:.2f} MB) built in "
          f"{time.perf_counter() - start:.3f} s")

    from pydoc_data.topics import topics
    rng = random.Random(0)
    vocabulary = sorted({w for p in passages[:500] for w in words(p.text)})
    queries = [f"What is {name}?" for name in sorted(topics)]
    queries += [" ".join(rng.sample(vocabulary, 3)) for _ in range(args.queries - len(queries))]
    latencies, hits, section = [], 0, topic_of_line(text)
    for query in queries:
        start = time.perf_counter()
        found = index.search(query, k=3)
        latencies.append((time.perf_counter() - start) * 1000)
        if query.startswith("What is ") and found:
            hits += section[found[0].line - 1] == query[8:-1]
    latencies.sort()
    print(f"search (k=3): {len(queries)} queries, median {statistics.median(latencies):.3f} ms, "
          f"p99 {latencies[int(0.99 * len(latencies))]:.3f} ms, max {latencies[-1]:.3f} ms")
    print(f'"What is <topic>?": top passage from that topic\'s section for {hits}/{len(topics)} topics')


if __name__ == "__main__":
    main()
