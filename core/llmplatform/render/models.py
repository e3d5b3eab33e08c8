"""LLMModel rules: the resolved endpoint, secret checks, the config entry, the Ready verdict.

Why a model with a missing Secret stays out of the gateway config: the gateway could only
fail every request to it; leaving it out makes the policy fall back at once and the model's
Ready=False says which Secret to create. The same holds for a Secret that exists but that the
gateway does not mount (`mounts.GatewayMounts`, known when the operator runs with
`--gateway-deployment`): Ready=False, reason CredentialsNotMounted, names the Secret and the
chart value that mounts it. A model without `apiKeySecretRef` is keyless by declaration
(a self-hosted server, or one that authenticates otherwise) and is called without a key.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplatform.api.llmmodel import LLMModel
from llmplatform.contract import config as gc
from llmplatform.render.inputs import Invalid, Parsed
from llmplatform.render.mounts import GatewayMounts
from llmplatform.render.secrets import SecretStore
from llmplatform.render.verdicts import ConditionVerdict, ModelVerdict
from llmplatform.render.workloads import child_name, service_url


@dataclass(frozen=True)
class ModelOutcome:
    verdict: ModelVerdict
    entry: gc.ModelEntry | None


def credential_problem(
    namespace: str, name: str, key: str, secrets: SecretStore, mounts: GatewayMounts | None
) -> tuple[str, str] | None:
    """(reason, message) when the gateway could not read the credential, None when it can."""
    problem = secrets.problem(namespace, name, key)
    if problem is not None:
        return ("SecretKeyNotFound" if secrets.exists(namespace, name) else "SecretNotFound", problem)
    if not (secrets.value(namespace, name, key) or b"").strip():
        return ("SecretKeyEmpty", f"key {key!r} of Secret {namespace}/{name} is empty")
    if mounts is not None and (problem := mounts.problem(namespace, name, key)) is not None:
        return ("CredentialsNotMounted", problem)
    return None


def resolve_model(
    parsed: Parsed[LLMModel], secrets: SecretStore, mounts: GatewayMounts | None = None
) -> ModelOutcome:
    model = parsed.resource
    spec = model.spec
    ns, name = parsed.namespace, parsed.name
    secret_ref: gc.SecretRef | None = None
    ca_ref: gc.SecretRef | None = None
    problems: list[str] = []
    if spec.serving is not None:
        url = service_url(name, ns, spec.serving.port)
        ready = ConditionVerdict(
            "Ready",
            "Unknown",
            "DeploymentPending",
            f"waiting for Deployment {child_name(name)} to have available replicas",
        )
    else:
        assert spec.endpoint is not None  # guaranteed by the exactly-one-of rule
        url = spec.endpoint.url
        ready = ConditionVerdict("Ready", "True", "Configured", "in the gateway config")
        ref = spec.endpoint.api_key_secret_ref
        if ref is not None:
            secret_ref = gc.SecretRef(namespace=ns, name=ref.name, key=ref.key)
            found = credential_problem(ns, ref.name, ref.key, secrets, mounts)
            if found is not None:
                reason, problem = found
                problems.append(problem)
                ready = ConditionVerdict("Ready", "False", reason, problem)
        ca = spec.endpoint.ca_bundle_secret_ref
        if ca is not None:
            ca_ref = gc.SecretRef(namespace=ns, name=ca.name, key=ca.key)
            ca_found = _ca_bundle_problem(ns, ca.name, ca.key, secrets, mounts)
            if ca_found is not None:
                reason, ca_problem = ca_found
                problems.append(ca_problem)
                ready = ConditionVerdict("Ready", "False", reason, "; ".join(problems))
    in_config = not problems
    entry = None
    if in_config:
        entry = gc.ModelEntry(
            id=parsed.id,
            namespace=ns,
            name=name,
            tier=spec.tier,
            provider=spec.provider,
            upstream_model=spec.upstream_model or name,
            url=url,
            api_key_secret_ref=secret_ref,
            self_hosted=spec.serving is not None,
            context_window=spec.context_window,
            max_output_tokens=spec.max_output_tokens,
            pricing=gc.Pricing(
                input_per_million_tokens=spec.pricing.input_per_million_tokens,
                output_per_million_tokens=spec.pricing.output_per_million_tokens,
            ),
            priors=gc.Priors(expected_latency_ms=spec.expected_latency_ms, availability=spec.availability),
            capabilities=sorted(spec.capabilities),
            max_data_classification=spec.max_data_classification,
            region=spec.region,
            tls=url.startswith("https://"),
            ca_bundle_secret_ref=ca_ref,
        )
    verdict = ModelVerdict(
        namespace=ns,
        name=name,
        serving=spec.serving is not None,
        endpoint=url,
        in_config=in_config,
        ready=ready,
        problems=tuple(problems),
    )
    return ModelOutcome(verdict, entry)


PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


def _ca_bundle_problem(
    ns: str, name: str, key: str, secrets: SecretStore, mounts: GatewayMounts | None
) -> tuple[str, str] | None:
    """(reason, message) when the CA bundle cannot serve, or None. Only the PEM framing is
    checked here (the core parses no certificates); the gateway builds the TLS context and
    reports the rest. The bundle is read by the gateway from its secrets folder like a
    credential, so an unmounted bundle keeps the model out just as an unmounted key does: the
    gateway could not verify the upstream, and every request to it would fail."""
    problem = secrets.problem(ns, name, key)
    if problem is not None:
        reason = "SecretKeyNotFound" if secrets.exists(ns, name) else "SecretNotFound"
        return reason, f"CA bundle: {problem}"
    value = secrets.value(ns, name, key) or b""
    if PEM_CERTIFICATE not in value:
        pem = PEM_CERTIFICATE.decode()
        return (
            "InvalidCABundle",
            f"CA bundle: Secret {ns}/{name} key {key!r} holds no PEM certificate ({pem})",
        )
    if mounts is not None and (problem := mounts.problem(ns, name, key)) is not None:
        return "CredentialsNotMounted", f"CA bundle: {problem}"
    return None


def invalid_model(invalid: Invalid) -> ModelVerdict:
    return ModelVerdict(
        namespace=invalid.namespace,
        name=invalid.name,
        serving=False,
        endpoint=None,
        in_config=False,
        ready=ConditionVerdict("Ready", "False", "InvalidSpec", invalid.error),
        problems=(invalid.error,),
    )
