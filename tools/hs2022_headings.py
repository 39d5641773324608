#!/usr/bin/env python3
"""Write spoke/codes/hs2022-headings.toml: the HS 2022 chapters (2 digits) and headings
(4 digits) with their English descriptions, from the public dataset datasets/harmonized-system.

Source: github.com/datasets/harmonized-system at commit
905e5a0fa29f5700d62cb3cc1265f21bc8a92329, `data/harmonized-system.csv` (version 2022.0 in its
datapackage.json; the data from UN Comtrade; licence ODC PDDL 1.0). Run from the repository
root, with either a copy of that CSV or a clone of the repository (the pinned commit is read
from it):

    python3 tools/hs2022_headings.py path/to/harmonized-system.csv
    python3 tools/hs2022_headings.py --repo path/to/harmonized-system   # a clone or bare git dir

What it does, and nothing else: keeps the rows of level 2 (chapters) and 4 (headings), drops
UN Comtrade's own code 99 / 9999 ("Commodities not specified according to kind", a statistical
code, not a chapter or heading of HS 2022), normalises each description's whitespace (line
breaks, runs of spaces, leading and trailing spaces) to single spaces, and writes them in code
order. It refuses an input whose counts or shape differ from what HS 2022 has (96 chapters,
1228 headings, each heading under a chapter of the file), so that a changed source is noticed,
not converted. The output is committed; the input's SHA-256 is written in its header.
"""

import argparse
import csv
import hashlib
import io
import json
import pathlib
import subprocess
import sys

COMMIT = "905e5a0fa29f5700d62cb3cc1265f21bc8a92329"
CSV_PATH = "data/harmonized-system.csv"
OUT = pathlib.Path(__file__).resolve().parent.parent / "spoke" / "codes" / "hs2022-headings.toml"

# UN Comtrade's code for commodities not specified according to kind: not part of HS 2022.
NOT_HS = {"99", "9999"}
CHAPTERS, HEADINGS = 96, 1228


def read_input(args):
    if args.repo:
        return subprocess.run(
            ["git", "-C", args.repo, "show", f"{COMMIT}:{CSV_PATH}"],
            check=True,
            capture_output=True,
        ).stdout
    return pathlib.Path(args.csv).read_bytes()


def convert(raw):
    text = raw.decode("utf-8-sig")
    chapters, headings = {}, {}
    for row in csv.DictReader(io.StringIO(text)):
        level, code = row["level"], row["hscode"]
        if level not in ("2", "4") or code in NOT_HS:
            continue
        want = int(level)
        if len(code) != want or not code.isdigit():
            sys.exit(f"level {level} row with code {code!r}")
        name = " ".join(row["description"].split())
        if not name:
            sys.exit(f"{code}: empty description")
        table = chapters if want == 2 else headings
        if code in table:
            sys.exit(f"{code}: twice")
        table[code] = name
    if len(chapters) != CHAPTERS or len(headings) != HEADINGS:
        sys.exit(f"{len(chapters)} chapters and {len(headings)} headings, not {CHAPTERS} and {HEADINGS}")
    orphans = [h for h in headings if h[:2] not in chapters]
    if orphans:
        sys.exit(f"headings without their chapter: {orphans}")
    return chapters, headings


def render(raw, chapters, headings):
    out = [
        "# HS 2022 (Harmonized Commodity Description and Coding System, 2022 edition): chapters",
        "# (2 digits) and headings (4 digits) with their English descriptions, as UN Comtrade",
        "# words them. Written by tools/hs2022_headings.py from datasets/harmonized-system",
        f"# (github.com/datasets/harmonized-system), commit {COMMIT},",
        f"# {CSV_PATH}, SHA-256 {hashlib.sha256(raw).hexdigest()}.",
        "# Licence ODC PDDL 1.0. Do not edit by hand: change the script and run it again. Names",
        "# exist in English only; the console shows them in every language. See SOURCES.md.",
    ]
    for ch in sorted(chapters):
        out.append("")
        for code, name in [(ch, chapters[ch])] + [
            (h, headings[h]) for h in sorted(headings) if h[:2] == ch
        ]:
            # A JSON string of ASCII text is a TOML basic string.
            out.append(f"[{code}]")
            out.append(f"name.en = {json.dumps(name, ensure_ascii=True)}")
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("csv", nargs="?", help="harmonized-system.csv of the pinned commit")
    g.add_argument("--repo", help="a clone (or bare git dir) of datasets/harmonized-system")
    args = p.parse_args()
    raw = read_input(args)
    chapters, headings = convert(raw)
    OUT.write_text(render(raw, chapters, headings), encoding="utf-8")
    print(f"{OUT}: {len(chapters)} chapters, {len(headings)} headings")


if __name__ == "__main__":
    main()
