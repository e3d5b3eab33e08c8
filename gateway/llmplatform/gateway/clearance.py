"""Data governance as compiled from the config: classes and their ranks, one rule per class,
a tenant's compliance settings, and the region rules those use.

Why apart from `governance.py`: these are decided at load time and belong to the compiled
config (`compiled.py` builds them); `governance.py` applies them to each request (scanning,
redaction, the per-candidate decision). Keeping them here means the compiled config does not
import the request-time code, which imports the router, which imports the compiled config.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplatform.contract.config import DataGovernance
from llmplatform.contract.names import CLASSIFICATIONS

CLASSES = CLASSIFICATIONS
"""Data classes, lowest to highest (the contract's names)."""
RANK: dict[str, int] = {c: i for i, c in enumerate(CLASSES)}
"""Class name -> rank (0 public .. 3 restricted)."""

EU_EEA_COUNTRIES = frozenset(
    {
        *("at", "be", "bg", "hr", "cy", "cz", "dk", "ee", "fi", "fr", "de", "gr", "hu", "ie"),
        *("it", "lv", "lt", "lu", "mt", "nl", "pl", "pt", "ro", "sk", "si", "es", "se"),
        *("is", "li", "no"),
    }
)
"""ISO 3166-1 alpha-2 codes of the 27 EU member states and the three other EEA states."""
NOT_EEA_CLOUD_REGIONS = frozenset({"eu-west-2", "eu-central-2", "europe-west2", "europe-west6"})
"""Cloud regions named `eu-`/`europe-` that are outside the EEA (London, Zurich)."""


def is_eu(region: str | None) -> bool:
    """Whether a model's `region` is in the EU/EEA, by a fixed, documented rule: the value
    (case-insensitive) is `EU` or `EEA`; or an EU/EEA country code, alone or as the first
    dash-separated part (`de`, `de-fra-1`); or a cloud region starting `eu-` or `europe-`
    (`eu-west-1`, `europe-west4`) other than the London and Zurich ones. Anything else,
    including no region at all, is not EU/EEA."""
    if not region:
        return False
    r = region.strip().lower()
    if r in ("eu", "eea") or r.split("-", 1)[0] in EU_EEA_COUNTRIES:
        return True
    return r.startswith(("eu-", "europe-")) and r not in NOT_EEA_CLOUD_REGIONS


def region_matches(region: str | None, wanted: str) -> bool:
    """A model region satisfies a wanted region when equal (case-insensitive) or a sub-region
    of it (`eu-west-1` satisfies `eu`); `EU`/`EEA` as wanted use the `is_eu` rule."""
    if not region:
        return False
    r, w = region.strip().lower(), wanted.strip().lower()
    if w in ("eu", "eea"):
        return is_eu(r)
    return r == w or r.startswith(w + "-")


@dataclass(frozen=True, slots=True)
class Rule:
    allowed_tiers: frozenset[str] | None
    allowed_regions: tuple[str, ...] | None
    redaction: bool


@dataclass(frozen=True, slots=True)
class PolicyGovernance:
    """A policy's dataGovernance, compiled: one Rule per class (the default where none is set)."""

    rules: tuple[Rule, ...]
    """Indexed by class rank."""
    output_scanning: bool
    plaintext_ok: frozenset[str] = frozenset()
    """Ids of self-hosted models that may receive regulated requests over in-cluster plain
    HTTP (the policy's allowInClusterPlaintext, as the operator resolved it)."""

    def admits(self, rank: int, tier: str, region: str | None) -> bool:
        rule = self.rules[rank]
        if rule.allowed_tiers is not None and tier not in rule.allowed_tiers:
            return False
        return rule.allowed_regions is None or any(region_matches(region, w) for w in rule.allowed_regions)


def compile_policy(gov: DataGovernance) -> PolicyGovernance:
    by_class = {r.classification: r for r in gov.rules}
    rules = []
    for cls in CLASSES:
        r = by_class.get(cls)
        if r is None:
            rules.append(Rule(None, None, gov.pii_redaction))
            continue
        rules.append(
            Rule(
                allowed_tiers=frozenset(r.allowed_tiers) if r.allowed_tiers is not None else None,
                allowed_regions=tuple(r.allowed_regions) if r.allowed_regions is not None else None,
                redaction=r.pii_redaction if r.pii_redaction is not None else gov.pii_redaction,
            )
        )
    return PolicyGovernance(
        rules=tuple(rules),
        output_scanning=gov.output_scanning,
        plaintext_ok=frozenset(gov.in_cluster_plaintext),
    )


@dataclass(frozen=True, slots=True)
class TenantGovernance:
    """A tenant's compliance settings, compiled."""

    hipaa: bool
    gdpr: bool
    region: str | None
    encrypted_transit: bool = False
    """Under hipaa or pci_dss: every request must reach its model over TLS (or over in-cluster
    plain HTTP the policy allows)."""
