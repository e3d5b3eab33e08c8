"""Data governance at request time: classify what a request carries, then decide per candidate
model whether it may receive the request as is, a redacted copy, or nothing.

Why one pure module: the rules interact (model clearance, the key's role, per-classification
rules, PII redaction, GDPR residency), and every one of them must be explainable in a 403. Here
they are plain functions over the compiled config and the request body, unit-testable and
called from the server with a few lines. The rules, in the order they apply:

- The request's class is the highest class over every string the request forwards upstream
  (forwarded.py: all string values and keys of the body, JSON inside strings decoded, values
  split across strings joined), from `pii.classify` on each string's normalised view.
- A key's role caps the class that leaves the gateway on its behalf (admin: restricted,
  data_scientist: confidential, business_user: internal; readonly may not create at all). The
  cap works exactly like a model's clearance: a model's effective clearance for this key is the
  lower of the two. So with redaction on, a business_user's e-mail address leaves redacted even
  to a model cleared for confidential data; with redaction off, the request is refused.
- A model may receive the request as is when its effective clearance is at least the class and
  the rule for that class (allowedTiers, allowedRegions) admits it. Otherwise, when PII
  redaction is on for that class (the policy's default, overridden by the class's rule), the
  findings are replaced by typed placeholders and the copy is re-classified; the model receives
  the copy when it is cleared for the copy's class and the rule for *that* class admits it.
  Otherwise the model is skipped.
- Preference: within one tier, models that may receive the request unredacted go first (the
  router's score order is kept otherwise); across tiers the router's order stands, so the
  requested tier is served redacted before another tier is tried. A model named explicitly in
  the request stays first.
- `gdpr` tenants are served only by EU/EEA models (see `is_eu`); a tenant's
  `compliance.region` admits only models in that region (see `region_matches`).
- Encryption in transit: a model reached over plain HTTP (`tls` false: an http:// endpoint
  or a self-hosted Service) receives no request of a tenant under hipaa or pci_dss, and no
  data classified restricted (its redacted copy may go when that is less), unless the policy
  allows it in-cluster (`allowInClusterPlaintext`, self-hosted models only, which their
  NetworkPolicy protects). The fallback walks only the models that remain; when none does,
  the 403 says so (code `encryption_required`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmplatform.gateway import forwarded, pii
from llmplatform.gateway.clearance import (
    CLASSES,
    RANK,
    PolicyGovernance,
    TenantGovernance,
    is_eu,
    region_matches,
)
from llmplatform.gateway.errors import GatewayError
from llmplatform.gateway.forwarded import Forwarded, Piece

if TYPE_CHECKING:
    from llmplatform.gateway.router import Candidate

RESTRICTED = RANK["restricted"]

ROLE_CEILING = {
    "admin": RANK["restricted"],
    "data_scientist": RANK["confidential"],
    "business_user": RANK["internal"],
}
"""Highest class a role may send; a role not listed (readonly) may not create anything."""

# -- the text parts of a completion (output scanning) ---------------------------------------


def _content(content: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(content, str):
        return fn(content)
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                part = fn(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                part = {**part, "text": fn(part["text"])}
            out.append(part)
        return out
    return content


def _message(message: Any, fn: Callable[[str], str]) -> Any:
    if not isinstance(message, dict):
        return message
    out = dict(message)
    if "content" in out:
        out["content"] = _content(out["content"], fn)
    calls = out.get("tool_calls")
    if isinstance(calls, list):
        out["tool_calls"] = [_call(c, fn) for c in calls]
    if isinstance(out.get("function_call"), dict):
        out["function_call"] = _function(out["function_call"], fn)
    return out


def _call(call: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(call, dict) and isinstance(call.get("function"), dict):
        return {**call, "function": _function(call["function"], fn)}
    return call


def _function(function: dict[str, Any], fn: Callable[[str], str]) -> dict[str, Any]:
    if isinstance(function.get("arguments"), str):
        return {**function, "arguments": fn(function["arguments"])}
    return function


# -- one request -----------------------------------------------------------------------------


@dataclass(slots=True)
class Scan:
    """What a request carries, and (lazily) its redacted copy."""

    body: dict[str, Any]
    endpoint: str
    hipaa: bool
    forwarded: Forwarded
    rank: int = 0
    findings: dict[str, int] = field(default_factory=dict)
    _redacted: tuple[dict[str, Any], int] | None = None

    @property
    def classification(self) -> str:
        return CLASSES[self.rank]

    def redacted(self) -> tuple[dict[str, Any], int]:
        """The body with every finding replaced by its typed placeholder, and its class."""
        if self._redacted is None:
            # strings without findings keep their class; the others are classified again
            rank = max((p.rank for p in self.forwarded.pieces if not p.spans), default=0)

            def redact(piece: Piece) -> str:
                nonlocal rank
                out = pii.redact(piece.text, piece.spans)
                rank = max(rank, RANK[pii.classify(out, [])])
                return out

            self._redacted = (self.forwarded.redacted(redact), rank)
        return self._redacted


def scan(body: dict[str, Any], endpoint: str, hipaa: bool) -> Scan:
    """Scans every string the request forwards (forwarded.py; the same walk for every
    endpoint, so `endpoint` only labels the result)."""
    fwd = forwarded.scan(body, hipaa)
    rank = max((p.rank for p in fwd.pieces), default=0)
    return Scan(body=body, endpoint=endpoint, hipaa=hipaa, forwarded=fwd, rank=rank, findings=fwd.findings)


class GovernanceDenied(GatewayError):
    """A 403 from the governance rules; `reason` labels the denial metric."""

    def __init__(self, message: str, code: str, reason: str) -> None:
        super().__init__(403, message, code=code)
        self.reason = reason


@dataclass(slots=True)
class Route:
    cand: Candidate
    redacted: bool


def check_role(role: str) -> None:
    """readonly keys (and any role the gateway does not know) may not create anything."""
    if role not in ROLE_CEILING:
        raise GatewayError(
            403,
            f"API keys with role {role!r} may not create completions or embeddings",
            code="role_not_allowed",
        )


def route(
    found: Scan,
    cands: list[Candidate],
    gov: PolicyGovernance,
    tenant: TenantGovernance,
    role: str,
    named: bool,
) -> list[Route]:
    """The candidates that may serve this request, each with whether it gets the redacted
    copy; raises a 403 GatewayError (code `data_classification` or `data_residency`) when none
    may. `named`: the request named a model (it stays first)."""
    ceiling = ROLE_CEILING[role]
    raw = found.rank
    redaction = gov.rules[raw].redaction and bool(found.findings)
    routes: list[Route] = []
    resident = 0
    unencrypted: list[str] = []
    """Models left out only because the request would reach them over plain HTTP."""
    for cand in cands:
        model = cand.model
        if (tenant.gdpr and not is_eu(model.region)) or (
            tenant.region is not None and not region_matches(model.region, tenant.region)
        ):
            continue
        resident += 1
        plain = not model.tls and model.id not in gov.plaintext_ok
        if plain and tenant.encrypted_transit:
            unencrypted.append(model.name)
            continue
        clearance = min(model.max_class, ceiling)
        blocked = False
        if raw <= clearance and gov.admits(raw, cand.tier, model.region):
            if not plain or raw < RESTRICTED:
                routes.append(Route(cand, False))
                continue
            blocked = True  # restricted data over plain HTTP: perhaps its redacted copy may go
        if redaction:
            red = found.redacted()[1]
            if red <= clearance and gov.admits(red, cand.tier, model.region):
                if not plain or red < RESTRICTED:
                    routes.append(Route(cand, True))
                    continue
                blocked = True
        if blocked:
            unencrypted.append(model.name)
    if not routes:
        if unencrypted:
            raise _unencrypted(found, unencrypted, tenant)
        raise _denial(found, cands, resident, ceiling, role, redaction, tenant)
    if named or not any(r.redacted for r in routes):
        return routes
    # within a tier, models cleared for the request as is go before those needing redaction
    position = {tier: i for i, tier in enumerate(dict.fromkeys(r.cand.tier for r in routes))}
    return sorted(routes, key=lambda r: (position[r.cand.tier], r.redacted))


def _unencrypted(found: Scan, models: list[str], tenant: TenantGovernance) -> GovernanceDenied:
    if tenant.encrypted_transit:
        who = "requests of a tenant under hipaa or pci_dss"
    else:
        who = f"data classified {found.classification}"
    names = ", ".join(dict.fromkeys(models))
    return GovernanceDenied(
        f"{who} must reach the model over TLS: the model(s) that could serve this request "
        f"({names}) are reached over plain HTTP, and the routing policy does not allow in-cluster "
        "plain traffic for them (dataGovernance.allowInClusterPlaintext, self-hosted models only)",
        "encryption_required",
        "transit",
    )


def _denial(
    found: Scan,
    cands: list[Candidate],
    resident: int,
    ceiling: int,
    role: str,
    redaction: bool,
    tenant: TenantGovernance,
) -> GovernanceDenied:
    cls = found.classification
    what = ", ".join(f"{t} x{n}" for t, n in sorted(found.findings.items())) or "no personal data"
    if cands and resident == 0:
        where = "an EU/EEA region (gdpr)" if tenant.gdpr else f"region {tenant.region!r}"
        return GovernanceDenied(
            f"no model in the allowed tiers runs in {where}, as your tenant's compliance settings require",
            "data_residency",
            "residency",
        )
    if redaction:
        red = CLASSES[found.redacted()[1]]
        after = f"; after PII redaction it is still {red}"
    else:
        after = "; PII redaction is off for this classification" if found.findings else ""
    if (found.redacted()[1] if redaction else found.rank) > ceiling:
        why, reason = f"keys with role {role!r} may send data up to {CLASSES[ceiling]}", "role"
    else:
        why, reason = f"no model in the allowed tiers is cleared for {cls} data", "classification"
    return GovernanceDenied(
        f"request classified {cls} (found: {what}){after}; {why}", "data_classification", reason
    )


# -- output scanning (policy dataGovernance.outputScanning) -----------------------------------


def _count(findings: dict[str, int], found: list[pii.Finding]) -> None:
    for f in found:
        findings[f.type] = findings.get(f.type, 0) + 1


def redact_text(text: str, hipaa: bool, findings: dict[str, int]) -> str:
    found = pii.scan(text, hipaa=hipaa)
    if not found:
        return text
    _count(findings, found)
    return pii.redact(text, found)


def redact_response(raw: bytes, endpoint: str, hipaa: bool) -> tuple[bytes, dict[str, int]]:
    """A JSON completion with PII in its generated text (message content, tool-call arguments,
    completion text) replaced by typed placeholders, and the findings by type. Embeddings and
    bodies that are not completions pass unchanged."""
    findings: dict[str, int] = {}
    if endpoint == "embeddings":
        return raw, findings
    try:
        doc = json.loads(raw)
    except ValueError:
        return raw, findings
    choices = doc.get("choices") if isinstance(doc, dict) else None
    if not isinstance(choices, list):
        return raw, findings

    def fn(text: str) -> str:
        return redact_text(text, hipaa, findings)

    for choice in choices:
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("message"), dict):
            choice["message"] = _message(choice["message"], fn)
        if isinstance(choice.get("text"), str):
            choice["text"] = fn(choice["text"])
    if not findings:
        return raw, findings
    return json.dumps(doc).encode(), findings


class StreamScanner:
    """Redacts generated text across SSE chunks: one `pii.StreamRedactor` per choice holds back
    a tail that could be the start of a finding, so a finding split across chunks is still
    replaced. The held tail is flushed into the choice's finishing chunk (or, if the stream
    never finishes a choice, into a last chunk before `[DONE]`)."""

    def __init__(self, endpoint: str, hipaa: bool) -> None:
        self.chat = endpoint == "chat"
        self.hipaa = hipaa
        self.findings: dict[str, int] = {}
        self._redactors: dict[int, pii.StreamRedactor] = {}
        self._base: dict[str, Any] = {}

    def _redactor(self, index: int) -> pii.StreamRedactor:
        r = self._redactors.get(index)
        if r is None:
            r = self._redactors[index] = pii.StreamRedactor(hipaa=self.hipaa)
        return r

    def _set(self, choice: dict[str, Any], text: str) -> None:
        if self.chat:
            delta = choice.get("delta")
            choice["delta"] = {**(delta if isinstance(delta, dict) else {}), "content": text}
        else:
            choice["text"] = text

    def chunk(self, chunk: dict[str, Any]) -> dict[str, Any]:
        """The chunk with its text replaced by what is safe to send now."""
        if not self._base:
            self._base = {k: chunk[k] for k in ("id", "object", "created", "model") if k in chunk}
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            if self.chat:
                delta = choice.get("delta")
                piece = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(delta, dict) and isinstance(delta.get("tool_calls"), list):
                    delta["tool_calls"] = [_call(c, self._whole) for c in delta["tool_calls"]]
            else:
                piece = choice.get("text")
            out = ""
            if isinstance(piece, str):
                out, found = self._redactor(index).feed(piece)
                _count(self.findings, found)
            if choice.get("finish_reason") is not None and index in self._redactors:
                tail, found = self._redactors.pop(index).finish()
                _count(self.findings, found)
                out += tail
            if isinstance(piece, str) or out:
                self._set(choice, out)
        return chunk

    def _whole(self, text: str) -> str:
        """Tool-call argument fragments are redacted per fragment (they are JSON, rarely PII)."""
        return redact_text(text, self.hipaa, self.findings)

    def finish(self) -> dict[str, Any] | None:
        """A last chunk carrying any text still held back, or None."""
        choices = []
        for index, r in sorted(self._redactors.items()):
            tail, found = r.finish()
            _count(self.findings, found)
            if tail:
                choice: dict[str, Any] = {"index": index, "finish_reason": None}
                self._set(choice, tail)
                choices.append(choice)
        self._redactors.clear()
        return {**self._base, "choices": choices} if choices else None
