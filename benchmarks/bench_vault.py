"""A notes app's plant vault: can a run answer the questions people ask of their notes? (issue 16)

The vault is written here: one note per plant as Obsidian keeps it (front matter, ``# Plant``, a picture, a
defining sentence, ``## Watering``, ``## Light``, ``## Related`` wiki links) and a glossary note. It is small
(9 KB), so `gpt train --input VAULT` runs with its defaults. Questions, scored by token-F1 (bench_ask.py's) of
the greedy open-book answer against the sentence that answers them:
  what  "What is Monstera?", "What is perlite?" (the derived questions' form)
  how   "How often should I water a jade plant?", "How much light does a ZZ plant need?" (sections whose
        titles every note shares, so no question is derived from them: retrieval must find them)
each quoted from the best passage (what gpt ask does), for comparison from any passage shown, and closed-book
(gpt ask --closed: the weights alone; no question of the "how" kind is ever trained).

    python benchmarks/bench_vault.py [--steps N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_ask import answer_text, token_f1

PLANTS = {  # name: (what it is, watering, light)
    "Monstera": ("Monstera deliciosa is a species of flowering plant native to tropical forests of southern Mexico.",
                 "Water every 1-2 weeks, letting the soil dry out between waterings.", "Bright, indirect light."),
    "Pothos": ("Pothos is a trailing vine in the arum family, native to Mo'orea in French Polynesia.",
               "Water when the top inch of soil is dry.", "Low to bright indirect light."),
    "Snake plant": ("The snake plant is a succulent with stiff, upright, sword-shaped leaves.",
                    "Water every 2-3 weeks; less in winter.", "Tolerates low light."),
    "Fiddle-leaf fig": ("The fiddle-leaf fig is a flowering plant in the fig family, native to western Africa.",
                        "Water when the top two inches of soil are dry.", "Bright, filtered light."),
    "ZZ plant": ("The ZZ plant is a tropical perennial native to eastern Africa with glossy, waxy leaves.",
                 "Water every 2-3 weeks.", "Low to bright indirect light."),
    "Peace lily": ("The peace lily is a flowering houseplant with white spathes, native to the tropics of the "
                   "Americas.",
                   "Keep the soil moist but not soggy.", "Medium to low light."),
    "Calathea": ("Calathea is a genus of flowering plants known for patterned leaves that fold up at night.",
                 "Keep the soil evenly moist with filtered water.", "Medium indirect light."),
    "Aloe vera": ("Aloe vera is a succulent plant species whose leaves contain a soothing gel.",
                  "Water deeply every 3 weeks.", "Bright direct light."),
    "Spider plant": ("The spider plant is a perennial with arching leaves that produces small plantlets on long stems.",
                     "Water about once a week.", "Bright to moderate indirect light."),
    "Rubber plant": ("The rubber plant is a species of fig with large, glossy leaves, native to South and "
                     "Southeast Asia.",
                     "Water when the top inch of soil is dry.", "Bright, indirect light."),
    "Boston fern": ("The Boston fern is a fern with long, arching fronds, native to tropical regions.",
                    "Keep the soil consistently damp.", "Indirect light and high humidity."),
    "Jade plant": ("The jade plant is a succulent with thick, woody stems and oval leaves, native to South Africa.",
                   "Water when the soil is completely dry.", "Several hours of direct sun."),
}
GLOSSARY = {
    "Aerial root": "a root that grows above the ground, used by climbing plants to cling to supports.",
    "Fenestration": "the natural holes and splits that form in the leaves of some plants as they mature.",
    "Node": "the point on a stem where leaves, buds or aerial roots grow.",
    "Repotting": "moving a plant into a larger pot with fresh soil when its roots fill the old one.",
    "Variegation": "patches of different colours in leaves, usually white or yellow on green.",
    "Propagation": "growing new plants from cuttings, divisions or seeds of an existing plant.",
    "Perlite": "a light volcanic glass added to potting soil to improve drainage and aeration.",
    "Humidity tray": "a shallow tray of pebbles and water placed under a pot to raise the humidity around it.",
}


def write_vault(folder: Path) -> list[tuple[str, str, str]]:
    """The notes, and (kind, question, the sentence that answers it) for each question scored."""
    folder.mkdir(parents=True, exist_ok=True)
    questions = []
    for name, (what, water, light) in PLANTS.items():
        picture = name.lower().replace(" ", "-") + ".jpg"
        (folder / f"{name}.md").write_text(
            f"---\ntags: [houseplant]\n---\n# {name}\n\n![{name}]({picture})\n\n{what}\n\n## Watering\n\n{water}\n\n"
            f"## Light\n\n{light}\n\n## Related\n- [[Monstera]]\n- [[Pothos]]\n")
        questions += [("what", f"What is {name}?", what),
                      ("how", f"How often should I water a {name.lower()}?", water),
                      ("how", f"How much light does a {name.lower()} need?", light)]
    (folder / "Glossary.md").write_text("# Glossary\n\n" + "".join(f"- **{t}**: {d}\n" for t, d in GLOSSARY.items()))
    return questions + [("what", f"What is {t.lower()}?", d) for t, d in GLOSSARY.items()]


def score(run: Path, questions: list[tuple[str, str, str]]) -> dict[str, dict[str, float]]:
    """Mean token-F1 per question kind: quoted from the best passage, from any passage shown, and closed-book."""
    from gpt.ask import asked_open_book
    from gpt.generate import Generator
    from gpt.retrieval import RUN_PASSAGES, PassageIndex
    gen = Generator(run, "cpu")
    opts = gen.options(max_new_tokens=80, temperature=0.0, seed=1, stop=["\n\n"])
    index = PassageIndex.load(run / RUN_PASSAGES)
    out: dict[str, dict[str, list[float]]] = {}
    for kind, question, truth in questions:
        book = asked_open_book(gen, index, question)
        messages = [{"role": "user", "content": book.prompt}]
        for mode, k in (("best passage", 1), ("any passage", len(book.shown))):
            quote = gen.quote(messages, list(book.shown[:k]), [p.body for p in book.passages[:k]])
            reply = answer_text("".join(gen.stream_chat(messages, opts, constraint=quote)))
            out.setdefault(mode, {}).setdefault(kind, []).append(token_f1(reply, truth))
        reply = answer_text(gen.chat([{"role": "user", "content": question}], opts).text)
        out.setdefault("closed book", {}).setdefault(kind, []).append(token_f1(reply, truth))
    return {mode: {kind: sum(f) / len(f) for kind, f in kinds.items()} for mode, kinds in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, help="train this many steps instead of the default budget")
    parser.add_argument("--keep", help="folder for the vault and the run (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench_vault_"))
    questions = write_vault(work / "vault")
    steps = ["--train.max_time", "0", "--train.max_iters", str(args.steps)] if args.steps else []
    subprocess.run([sys.executable, "-m", "gpt", "train", "--fresh", "--input", str(work / "vault"),
                    "--out", str(work / "run"), *steps], check=True)
    counts = {kind: sum(q[0] == kind for q in questions) for kind in ("what", "how")}
    print(f"\nvault: {len(PLANTS)} plant notes and a glossary of {len(GLOSSARY)}; token-F1, greedy")
    for mode, kinds in score(work / "run", questions).items():
        print(f"  {mode:<13} " + "  ".join(f"{k} ({counts[k]}): {v:.3f}" for k, v in kinds.items()))


if __name__ == "__main__":
    main()
