"""A labelled corpus for the PII detector (gateway/llmplatform/gateway/pii/), generated with
Faker in seven locales from a fixed seed, so every run measures the same text.

Why generated and not collected: real prompts with real personal data cannot be committed or
shared, and a generated corpus can be regenerated, enlarged and labelled exactly. Faker gives
each locale's own formats (phone numbers, IBANs, postcodes, names around them); the sentences
around each value are short templates in the locale's language, some with a hint word
("phone", "MRN") and some without, so the rules that rely on context are measured honestly.

Each sample is one short text with at most one labelled span. Positives carry the finding type
(and a `group`, e.g. the phone format); hard negatives carry `type=None` and a `group` naming
the look-alike (UUID, git SHA, order number, ...): the detector should leave them untouched.
"""

from __future__ import annotations

import ipaddress
import random
import string
from dataclasses import dataclass

from faker import Faker

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL")
SEED = 20261128


@dataclass(frozen=True)
class Sample:
    text: str
    type: str | None  # None: a hard negative
    start: int
    end: int
    locale: str
    group: str


# Templates by language: `{v}` is the value. Phone templates marked with a leading "!" have no
# phone word (the detector must find the number by its format alone).
TEMPLATES: dict[str, dict[str, list[str]]] = {
    "en": {
        "email": ["Please send the contract to {v} by Friday.", "Contact: {v}", "cc {v} on the thread."],
        "phone": [
            "Call me at {v} tomorrow.",
            "Phone: {v}",
            "!Her number is {v}, after 5 pm.",
            "!{v} (office)",
        ],
        "generic": ["The customer gave {v} in the form.", "Details: {v}.", "Use {v} for this one."],
        "ssn": ["My SSN is {v}.", "Social security number: {v}", "!Applicant {v} was approved."],
        "card": [
            "Charge card {v} for the renewal.",
            "Card number {v}, exp 09/27.",
            "!Paid with {v} yesterday.",
        ],
        "iban": ["Please wire it to IBAN {v}.", "!Account {v} (main).", "Bank details: {v}"],
        "secret": ["export API_KEY={v}", "my token is {v} please debug", "!Authorization: Bearer {v}"],
    },
    "de": {
        "email": ["Bitte schicken Sie den Vertrag an {v}.", "Kontakt: {v}"],
        "phone": [
            "Rufen Sie mich unter {v} an.",
            "Telefon: {v}",
            "!Die Nummer ist {v}, ab 17 Uhr.",
            "!{v} (Büro)",
        ],
        "generic": ["Der Kunde hat {v} angegeben.", "Angaben: {v}."],
        "iban": ["Bitte überweisen Sie auf IBAN {v}.", "!Konto {v} (Haupt)."],
    },
    "fr": {
        "email": ["Merci d'envoyer le contrat à {v}.", "Contact : {v}"],
        "phone": [
            "Appelez-moi au {v} demain.",
            "Téléphone : {v}",
            "!Son numéro est le {v}, après 17 h.",
            "!{v} (bureau)",
        ],
        "generic": ["Le client a indiqué {v} dans le formulaire.", "Détails : {v}."],
        "iban": ["Merci de virer sur l'IBAN {v}.", "!Compte {v} (principal)."],
    },
    "es": {
        "email": ["Envíe el contrato a {v} antes del viernes.", "Contacto: {v}"],
        "phone": [
            "Llámame al {v} mañana.",
            "Teléfono: {v}",
            "!Su número es {v}, después de las 17 h.",
            "!{v} (oficina)",
        ],
        "generic": ["El cliente indicó {v} en el formulario.", "Datos: {v}."],
        "iban": ["Transfiera a la cuenta IBAN {v}.", "!Cuenta {v} (principal)."],
    },
    "it": {
        "email": ["Invii il contratto a {v} entro venerdì.", "Contatto: {v}"],
        "phone": [
            "Mi chiami al {v} domani.",
            "Telefono: {v}",
            "!Il suo numero è {v}, dopo le 17.",
            "!{v} (ufficio)",
        ],
        "generic": ["Il cliente ha indicato {v} nel modulo.", "Dati: {v}."],
        "iban": ["Effettui il bonifico sull'IBAN {v}.", "!Conto {v} (principale)."],
    },
    "nl": {
        "email": ["Stuur het contract vóór vrijdag naar {v}.", "Contact: {v}"],
        "phone": [
            "Bel me morgen op {v}.",
            "Telefoon: {v}",
            "!Het nummer is {v}, na 17 uur.",
            "!{v} (kantoor)",
        ],
        "generic": ["De klant gaf {v} op in het formulier.", "Gegevens: {v}."],
        "iban": ["Maak het over naar IBAN {v}.", "!Rekening {v} (hoofd)."],
    },
}
HIPAA_TEMPLATES = {
    "mrn": ["MRN: {v}", "Patient MRN {v} was admitted.", "medical record number {v}", "Patient ID: {v}"],
    "icd10": [
        "Diagnosis: {v}.",
        "ICD-10 code {v} recorded at discharge.",
        "dx {v}, stable.",
        "Assessment: {d} ({v}).",
        "Problem list: {v} {d}.",
        "!Seen today for {d} ({v}).",
        "!{d}, {v}, follow up in 3 months.",
    ],
    "dosage": ["Start {drug} {v} twice daily.", "Give {drug} {v} at night.", "{drug} {v} PRN", "Dose: {v}"],
}
ICD10 = [
    ("E11.9", "type 2 diabetes"), ("I10", "hypertension"), ("J45.909", "asthma"), ("F32.9", "depression"),
    ("M54.5", "low back pain"), ("Z00.00", "routine exam"), ("K21.9", "GERD"), ("N39.0", "UTI"),
    ("R51", "headache"), ("S72.001A", "femur fracture"), ("E78.5", "hyperlipidemia"), ("J06.9", "URI"),
    ("I25.10", "CAD"), ("G43.909", "migraine"), ("F41.1", "anxiety"), ("E03.9", "hypothyroidism"),
    ("J44.9", "COPD"), ("N18.3", "CKD stage 3"), ("I48.91", "atrial fibrillation"), ("U07.1", "COVID-19"),
    ("C50.911", "breast cancer"), ("O80", "delivery"), ("A09", "gastroenteritis"),
    ("B34.9", "viral infection"),
    ("L40.0", "psoriasis"), ("H52.4", "presbyopia"), ("D64.9", "anemia"), ("T78.40XA", "allergy"),
    ("Z23", "immunization"), ("R05", "cough"),
]  # fmt: skip
MODEL_NAMES = [
    "A10",
    "A100",
    "H100",
    "B12",
    "F16",
    "M25",
    "E10",
    "Q35",
    "V12",
    "T4",
    "L40",
    "K80",
    "P100",
    "R2",
    "S3",
]
DRUGS = ["metformin", "lisinopril", "amoxicillin", "insulin glargine", "atorvastatin", "ibuprofen", "heparin",
         "levothyroxine", "vitamin D", "prednisone", "salbutamol", "omeprazole"]  # fmt: skip
DOSES = ["500 mg", "2.5 mL", "10 units", "0.5 mcg", "1000 IU", "40mg", "20 mEq", "2 tablets", "5 mg/kg",
         "0.25 mg", "12.5mg", "1 capsule", "2 puffs", "100 mcg", "15 units", "7,5 mg"]  # fmt: skip


def _lang(locale: str) -> str:
    return locale[:2]


def _template(rng: random.Random, locale: str, kind: str) -> str:
    lang = TEMPLATES[_lang(locale)]
    options = lang.get(kind) or TEMPLATES["en"].get(kind) or lang["generic"]
    return rng.choice(options)


def _place(fake: Faker, template: str, value: str, **extra: str) -> tuple[str, int, int]:
    bare = template.lstrip("!")
    before = fake.sentence() + " "
    head, _, tail = bare.partition("{v}")
    head = head.format(**extra)
    tail = tail.format(**extra)
    text = before + head + value + tail + " " + fake.sentence()
    start = len(before) + len(head)
    return text, start, start + len(value)


def _group_card(rng: random.Random, digits: str) -> tuple[str, str]:
    style = rng.choice(["plain", "spaces", "dashes"])
    if style == "plain":
        return digits, style
    sep = " " if style == "spaces" else "-"
    if len(digits) == 15:  # Amex 4-6-5
        return sep.join((digits[:4], digits[4:10], digits[10:])), style
    return sep.join(digits[i : i + 4] for i in range(0, len(digits), 4)), style


def _phone_group(value: str, locale: str) -> str:
    if value.startswith(("+", "00")):
        return "international"
    if locale == "en_US":
        return "north_american"
    return "national"


def _random_token(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    while True:
        t = "".join(rng.choice(alphabet) for _ in range(n))
        if any(c.isdigit() for c in t) and any(c.isupper() for c in t) and any(c.islower() for c in t):
            return t


def _secret(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(
        ["openai", "anthropic", "aws", "github", "github_pat", "slack", "google", "gitlab", "stripe", "hf",
         "aws_secret", "generic"]
    )  # fmt: skip
    alnum = string.ascii_letters + string.digits
    up = string.ascii_uppercase + string.digits
    value = {
        "openai": lambda: "sk-proj-" + _random_token(rng, 48, alnum + "_-"),
        "anthropic": lambda: "sk-ant-api03-" + _random_token(rng, 93, alnum + "_-") + "AA",
        "aws": lambda: rng.choice(["AKIA", "ASIA"]) + "".join(rng.choice(up) for _ in range(16)),
        "github": lambda: rng.choice(["ghp_", "gho_", "ghs_"]) + _random_token(rng, 36),
        "github_pat": lambda: "github_pat_11" + _random_token(rng, 20) + "_" + _random_token(rng, 59),
        "slack": lambda: (
            "xoxb-"
            + "".join(rng.choice(string.digits) for _ in range(12))
            + "-"
            + "".join(rng.choice(string.digits) for _ in range(13))
            + "-"
            + _random_token(rng, 24)
        ),
        "google": lambda: "AIza" + _random_token(rng, 35, alnum + "_-"),
        "gitlab": lambda: "glpat-" + _random_token(rng, 20, alnum + "_-"),
        "stripe": lambda: "sk_live_" + _random_token(rng, 24),
        "hf": lambda: "hf_" + _random_token(rng, 34),
        "aws_secret": lambda: _random_token(rng, 40, alnum + "+/"),
        "generic": lambda: _random_token(rng, rng.choice([32, 40, 48, 64]), alnum + "_-"),
    }[kind]()
    return value, kind


def positives(per_type: int) -> list[Sample]:
    rng = random.Random(SEED)
    out: list[Sample] = []
    fakes = {loc: Faker(loc) for loc in LOCALES}
    for i, loc in enumerate(LOCALES):
        fakes[loc].seed_instance(SEED + i)

    def add(kind: str, loc: str, value: str, group: str, template: str | None = None, **extra: str) -> None:
        fake = fakes[loc]
        tpl = template or _template(rng, loc, kind)
        text, s, e = _place(fake, tpl, value, **extra)
        if tpl.startswith("!"):
            group += "/no-hint" if kind in ("phone", "ssn", "icd10") else ""
        out.append(Sample(text, kind, s, e, loc, group))

    for n in range(per_type):
        loc = LOCALES[n % len(LOCALES)]
        fake = fakes[loc]
        add("email", loc, rng.choice([fake.email, fake.free_email, fake.company_email])(), "faker")
        phone = fake.phone_number()
        add("phone", loc, phone, _phone_group(phone, loc))
        ssn = fakes["en_US"].ssn()
        style = rng.choice(["dashes", "dashes", "spaces", "bare"])
        if style == "spaces":
            ssn = ssn.replace("-", " ")
        if style == "bare":
            add("ssn", "en_US", ssn.replace("-", ""), "bare", template="My SSN is {v}.")
        else:
            add("ssn", "en_US", ssn, style)
        card_type = rng.choice(
            ["visa16", "visa13", "visa19", "mastercard", "amex", "discover", "jcb16", "diners"]
        )
        card, style = _group_card(rng, fake.credit_card_number(card_type=card_type))
        add("card", loc, card, f"{card_type}/{style}")
        ip = rng.choice([fake.ipv4, fake.ipv4_private, fake.ipv4_public])()
        add("ipv4", loc, ip, "faker", template=_template(rng, loc, "generic"))
        v6 = fake.ipv6()
        compressed = rng.random() < 0.5
        if compressed:  # zero a run of groups so the compressed form (::) shows up
            groups = ipaddress.IPv6Address(v6).exploded.split(":")
            at = rng.randrange(1, 6)
            groups[at : at + rng.randrange(1, 3)] = ["0000"] * len(groups[at : at + 2])
            v6 = ipaddress.IPv6Address(":".join(groups[:8])).compressed
        add("ipv6", loc, v6, "compressed" if compressed else "full", template=_template(rng, loc, "generic"))
        iban = fake.iban()
        spaced = rng.random() < 0.5
        if spaced:
            iban = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
        add("iban", loc, iban, f"{iban[:2]}/{'spaces' if spaced else 'plain'}")
        secret, kind = _secret(rng)
        add("secret", loc, secret, kind, template=rng.choice(TEMPLATES["en"]["secret"]))
        # HIPAA types (English clinical notes; the formats are not locale specific).
        mrn = "".join(rng.choice(string.digits) for _ in range(rng.choice([6, 7, 8, 10])))
        add("mrn", "en_US", mrn, "digits", template=rng.choice(HIPAA_TEMPLATES["mrn"]))
        code, desc = rng.choice(ICD10)
        add("icd10", "en_US", code, "dot" if "." in code else "category",
            template=rng.choice(HIPAA_TEMPLATES["icd10"]), d=desc)  # fmt: skip
        add("dosage", "en_US", rng.choice(DOSES), "dose",
            template=rng.choice(HIPAA_TEMPLATES["dosage"]), drug=rng.choice(DRUGS))  # fmt: skip
    return out


def _luhn_fail(rng: random.Random) -> str:
    while True:
        d = "".join(rng.choice(string.digits) for _ in range(16))
        total = sum(
            int(c) if i % 2 else (int(c) * 2 - 9 if int(c) * 2 > 9 else int(c) * 2) for i, c in enumerate(d)
        )
        if total % 10:
            return d


def negatives(count: int) -> list[Sample]:
    """Hard negatives: strings that look like a finding but are not one."""
    rng = random.Random(SEED + 1)
    fake = Faker(LOCALES)
    fake.seed_instance(SEED + 1)
    hexd = "0123456789abcdef"

    def sha(n: int) -> str:
        return "".join(rng.choice(hexd) for _ in range(n))

    makers = {
        "order number": lambda: (
            rng.choice(["Order #", "order ", "PO-", "Ref. "]) + str(rng.randrange(10**5, 10**9))
        ),
        "invoice id": lambda: f"INV-{rng.randrange(2015, 2027)}-{rng.randrange(1, 10**6):06d}",
        "uuid": lambda: str(fake.uuid4()),
        "iso timestamp": lambda: fake.iso8601() + rng.choice(["", "Z", "+02:00"]),
        "iso date": lambda: fake.date(),
        "time": lambda: fake.time(),
        "version": lambda: (
            rng.choice(["v", "", "Python ", "release "])
            + ".".join(str(rng.randrange(0, 40)) for _ in range(rng.choice([2, 3])))
        ),
        "build number": lambda: f"10.0.{rng.randrange(10000, 26000)}.{rng.randrange(100, 5000)}",
        "price": lambda: (
            rng.choice(["$", "€ ", "£", "USD "]) + f"{rng.randrange(1, 99999):,}.{rng.randrange(100):02d}"
        ),
        "16-digit Luhn failure": lambda: rng.choice(
            [lambda d: d, lambda d: " ".join(d[i : i + 4] for i in range(0, 16, 4))]
        )(_luhn_fail(rng)),
        "postcode": lambda: fake.postcode(),
        "tracking number": lambda: rng.choice(
            [
                "1Z" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16)),
                "9400 1000 "
                + " ".join("".join(rng.choice(string.digits) for _ in range(4)) for _ in range(3))
                + " 00",
                "JD01" + "".join(rng.choice(string.digits) for _ in range(16)),
            ]
        ),
        "git sha": lambda: sha(rng.choice([7, 12, 40])),
        "sha256": lambda: sha(64),
        "isbn": lambda: rng.choice([fake.isbn13(), fake.isbn10(), fake.isbn10().replace("-", "")]),
        "zero-padded id": lambda: (
            rng.choice(["customer ", "Kundennummer ", "client n° ", "ID "])
            + f"{rng.randrange(1, 10**6):010d}"
        ),
        "bad IBAN checksum": lambda: (lambda i: i[:2] + f"{(int(i[2:4]) + 1) % 100:02d}" + i[4:])(
            fake.iban()
        ),
        "impossible SSN": lambda: (
            rng.choice(["000", "666", str(rng.randrange(900, 1000))])
            + f"-{rng.randrange(1, 100):02d}-{rng.randrange(1, 10000):04d}"
        ),
        "bad IPv4": lambda: (
            f"{rng.randrange(256, 1000)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
        ),
        "model or part name": lambda: rng.choice(MODEL_NAMES),
        "measurement": lambda: (
            f"{rng.randrange(1, 999)} {rng.choice(['MB', 'GB', 'GHz', 'ms', 'kg', 'km', 'MHz', 'px'])}"
        ),
        "percentage": lambda: f"{rng.randrange(0, 100)}.{rng.randrange(10)}%",
        "coordinates": lambda: f"{fake.latitude()}, {fake.longitude()}",
        "MAC address": lambda: fake.mac_address(),
        "code": lambda: rng.choice(
            ["std::vector<int> v;", "x = a[1::2]", "ratio 16:9", "10:30:00", "C::D::E"]
        ),
        "identifier": lambda: (
            rng.choice(fake.words(6))
            + "".join(w.capitalize() for w in fake.words(5))
            + str(rng.randrange(1, 2030))
        ),
        "file path": lambda: fake.file_path(depth=rng.randrange(2, 5)),
        "url": lambda: fake.url() + fake.uri_path(),
        "bank sort code": lambda: f"{rng.randrange(10, 99)}-{rng.randrange(10, 99)}-{rng.randrange(10, 99)}",
        "quantity": lambda: f"{rng.randrange(2, 500)} {rng.choice(['units', 'items', 'pieces', 'boxes'])}",
    }
    names = list(makers)
    out = []
    for n in range(count):
        group = names[n % len(names)]
        value = makers[group]()
        before = fake.sentence() + " "
        text = before + f"See {value} for details. " + fake.sentence()
        start = len(before) + 4
        out.append(Sample(text, None, start, start + len(value), "mixed", group))
    return out
