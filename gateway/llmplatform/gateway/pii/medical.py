"""HIPAA identifiers (only with `hipaa=True`).

MRNs need a context word ("MRN", "medical record number", "patient ID"...); dosages are a
number with a drug unit (mg, mcg, mL, units, IU, mEq, mmol, tablets...), not g or L, which are
as often groceries ("20 units" of stock is a dosage too: insulin). ICD-10 codes are a
chapter-valid letter + 2 digits; the dot form (`E11.9`) is always a code, and so is a bare
category (`I10`) after a coding word or note heading ("ICD", "diagnosis", "dx", "code",
"Assessment", "Problem list"...). A bare category with no such word (`ICD10_BARE`): for a hipaa
tenant a missed code is a disclosure while a redacted "A10" only costs a model name, so it is a
code *by default*, and rejected only on evidence that it names something else: (1) it is no
category of ICD-10 (WHO 2019) nor ICD-10-CM (2026) (`ICD_CATEGORIES`: `A10`, `B12`, `U12` are
unused, so they are never codes); (2) it is part of a longer token (`RTX-A10`, `A10-G`, a
spreadsheet range `A1:B12`); (3) the word right before or right after it says what kind of
thing it is, and that is not medical (`ICD10_NON_MEDICAL_WORDS`: `NVIDIA A10`, `A10 GPU`,
`vitamin B12`, `F16 jet`, `M25 motorway`). Only the *adjacent* word counts: a vehicle or road
word a few words away must not hide a transport-accident code (`hit by a car, V43`). The word
after is safe for streaming: the space after a code's last digit is glued, so the next word is
in the same piece. A bare category with no context at all ("See Q35 for details.") is
therefore redacted."""

from __future__ import annotations

import re

from llmplatform.gateway.pii.model import CONTEXT, DIGITS, Cand, free_right

MRN_PROBES = ("mrn", "medical record", "patient", "chart", "record number")
# Possessive up to the unit (a unit starts with a letter, so giving back a digit, the decimal
# part or the space can never help), so that a number without a unit fails at once.
DOSAGE = re.compile(
    r"(?i)[0-9]++(?:[.,][0-9]++)?+[ ]?+(?:mg|mcg|µg|μg|ug|ng|ml|units?|iu|meq|mmol"
    r"|tablets?|tabs?|capsules?|puffs?|drops?)(?:/(?:kg|day|d|hr?|dose|ml|m2|min))?(?![A-Za-z])"
)
MRN_CTX = re.compile(
    r"(?i)(?:\bmrn|medical record(?:s)?(?: number| no\.?| #)?|patient (?:id|number|no\.?)"
    r"|chart (?:number|no\.?)|record number)[\s:#=.\-]*(?:is\s+|was\s+)?$"
)
MRN = re.compile(r"[0-9]{2,}(?:-[0-9]{2,})*")
_ICD = re.compile(r"[A-Z][0-9]{2}(?:\.[0-9A-Z]{1,4})?(?![A-Za-z0-9])")
# Words that make a bare ICD-10 category ("I10") a code: coding words and the headings of
# clinical notes where codes are listed.
_ICD_CTX = re.compile(
    r"(?i)\b(?:icd|diagnos|dx|codes?|coded|assessment|problem list|pmh|history of|impression)"
)
ICD10_BARE = "unless_non_medical"
"""Bare categories (`I10`) without a coding word: "unless_non_medical" (codes unless they are
no category, part of a longer token or next to a non-medical word; see the module docstring),
"context" (never codes) or "always" (always codes). bench/governance measures all three."""
ICD10_NON_MEDICAL_WORDS = (
    # computing hardware and cloud
    "gpu", "nvidia", "cuda", "tesla", "radeon", "geforce", "quadro", "cpu", "chip", "card",
    "processor", "accelerator", "server", "vram", "aws", "ec2", "azure",
    # products and models
    "model", "version", "sku", "firmware", "camera", "lens", "laptop", "printer", "router",
    # vehicles and weapons
    "jet", "fighter", "aircraft", "plane", "tank", "car", "truck", "bus", "train", "engine",
    "rifle",
    # roads
    "motorway", "highway", "freeway", "autobahn", "road", "route", "junction", "traffic",
    # vitamins and supplements
    "vitamin", "supplement",
    # spreadsheets and places
    "column", "row", "sheet", "spreadsheet", "seat", "gate", "room", "flight",
)  # fmt: skip
"""Words that, right before or right after a bare category, say it names something else."""
_NON_MEDICAL = "|".join(ICD10_NON_MEDICAL_WORDS)
_ICD_NOT_BEFORE = re.compile(rf"(?i)\b(?:{_NON_MEDICAL})s?[ :]{{1,3}}$")
_ICD_NOT_AFTER = re.compile(rf"(?i) (?:{_NON_MEDICAL})s?(?![A-Za-z])")
# Highest valid two-digit category per chapter letter (ICD-10 / ICD-10-CM).
_ICD_MAX = {"D": 89, "E": 90, "H": 95, "K": 95, "P": 96, "T": 98, "U": 85}
# The categories of ICD-10 (WHO 2019) and ICD-10-CM (April 2026) together, by letter.
_ICD_RANGES = """
A 00-09 15-28 30-44 46 48-60 63-71 74-75 77-99
B 00-10 15-27 30 33-60 64-83 85-92 94-99
C 00-26 30-34 37-41 43-58 60-86 88 90-97
D 00-07 09-53 55-78 80-84 86 89
E 00-16 20-32 34-36 40-46 50-56 58-61 63-68 70-80 83-90
F 00-07 09-25 28-34 38-45 48 50-55 59-66 68-73 78-84 88-95 98-99
G 00-14 20-26 30-32 35-37 40-41 43-47 50-65 70-73 80-83 89-99
H 00-06 10-11 13 15-22 25-28 30-36 40 42-55 57-62 65-75 80-83 90-95
I 00-02 05-13 15-16 20-28 30-52 60-83 85-89 95-99
J 00-06 09-18 20-22 30-47 60-70 80-82 84-86 90-96 98-99
K 00-14 20-23 25-31 35-38 40-46 50-52 55-68 70-77 80-83 85-87 90-95
L 00-05 08 10-14 20-30 40-45 49-60 62-68 70-76 80-95 97-99
M 00-27 30-36 40-43 45-51 53-54 60-63 65-68 70-73 75-77 79-97 99
N 00-08 10-23 25-37 39-53 60-65 70-77 80-99
O 00-16 20-26 28-36 40-48 60-77 80-92 94-99
P 00-05 07-15 19-29 35-39 50-61 70-72 74-78 80-81 83-84 90-96
Q 00-07 10-18 20-28 30-45 50-56 60-87 89-93 95-99
R 00-07 09-23 25-27 29-37 39-65 68-99
S 00-99
T 00-71 73-76 78-88 90-98
U 04 07-09 82-85
V 00-06 09-99
W 00-46 49-62 64-70 73-81 83-94 99
X 00-06 08-54 57-99
Y 00-38 40-66 69-93 95-99
Z 00-05 08-99
"""
ICD_CATEGORIES = frozenset(
    f"{line[0]}{n:02d}"
    for line in _ICD_RANGES.split("\n")
    if line
    for r in line.split()[1:]
    for n in range(int(r[:2]), int(r[-2:]) + 1)
)


def icd10(text: str, s: int, out: list[Cand]) -> None:
    m = _ICD.match(text, s)
    if m is None:
        return
    code = m.group()
    if int(code[1:3]) > _ICD_MAX.get(code[0], 99):
        return
    e = m.end()
    if not free_right(text, e, "."):  # E11.9.2 or E11x: a version or a part number
        return
    if (
        "." in code
        or ICD10_BARE == "always"
        or _ICD_CTX.search(text, max(0, s - CONTEXT), s)
        or (ICD10_BARE == "unless_non_medical" and _bare_code(text, s, e, code))
    ):
        out.append((s, e, "icd10"))


def _bare_code(text: str, s: int, e: int, code: str) -> bool:
    """A bare category `text[s:e]` without a coding word is a code unless it is no category,
    part of a longer token or next to a non-medical word (see the module docstring)."""
    if code not in ICD_CATEGORIES:
        return False
    if s >= 2 and (
        (text[s - 1] in "-." and text[s - 2].isalnum()) or (text[s - 1] == ":" and text[s - 2] in DIGITS)
    ):
        return False  # RTX-A10, A1:B12
    if e + 1 < len(text) and text[e] in "-:" and text[e + 1].isalnum():
        return False  # A10-G, B12:C20
    return not (_ICD_NOT_BEFORE.search(text, max(0, s - 24), s) or _ICD_NOT_AFTER.match(text, e))
