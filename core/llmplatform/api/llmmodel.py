"""LLMModel: one model the gateway may route to, external or deployed by the operator.

Why the rules live here: "exactly one of endpoint or serving" and the replica bounds are
enforced by the API server (CEL in the generated CRD) and by the offline loaders (the same CEL
evaluated in-process), so they are declared once, next to the fields they constrain.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from llmplatform.api.base import K8sModel, LenientModel, defaulted, list_map, list_set, preserve_unknown
from llmplatform.api.cel import CelRule
from llmplatform.api.common import (
    DNS_LABEL_PATTERN,
    Condition,
    DataClassification,
    ObjectMeta,
    SecretKeyRef,
    Tier,
)

Provider = Literal["openai", "anthropic"]
Capability = Literal["chat", "completions", "embeddings"]
DEFAULT_CAPABILITIES: tuple[Capability, ...] = ("chat", "completions")

# Children are named `llmm-<name>` and a Service name is a DNS label (<= 63 characters).
SERVING_NAME_MAX = 63 - len("llmm-")


class Pricing(K8sModel):
    """List prices used for cost accounting, budgets and cost-aware routing."""

    input_per_million_tokens: float = Field(0.0, ge=0)
    """US dollars per million prompt tokens."""
    output_per_million_tokens: float = Field(0.0, ge=0)
    """US dollars per million completion tokens."""


class Endpoint(K8sModel):
    """An external or already running server the gateway calls directly."""

    cel_rules = (
        CelRule(
            rule="!has(self.caBundleSecretRef) || self.url.startsWith('https://')",
            message=(
                "caBundleSecretRef needs an https:// url (a plain http:// endpoint has no "
                "certificate to verify)"
            ),
            field_path=".caBundleSecretRef",
            reason="FieldValueInvalid",
        ),
    )

    url: Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=r"^https?://[^\s]+$")]
    """Base URL of the API, e.g. https://api.openai.com/v1 or https://api.anthropic.com."""
    api_key_secret_ref: SecretKeyRef | None = None
    """Secret (in the model's namespace) holding the upstream API key. The gateway reads it
    from a mounted Secret; the key never enters the gateway config."""
    ca_bundle_secret_ref: SecretKeyRef | None = None
    """Secret (an Opaque one, in the model's namespace) holding PEM CA certificates that the
    upstream's certificate must chain to, instead of the system's trusted CAs (a private CA in
    front of a self-run server; trust-manager can keep such a Secret). Verification itself is
    always on: the certificate must be valid and name the url's host."""


class Replicas(K8sModel):
    """Bounds for the number of model-server pods; an HPA scales between them when max > min."""

    cel_rules = (
        CelRule(
            rule="self.min <= self.max",
            message="replicas.min must be less than or equal to replicas.max",
            reason="FieldValueInvalid",
        ),
    )

    min: int = Field(1, ge=1, le=1000)
    """Fewest pods (also the Deployment's replica count when no HPA is rendered)."""
    max: int = Field(1, ge=1, le=1000)
    """Most pods the HPA may scale to."""


class Autoscaling(K8sModel):
    """How the HPA scales the model server when replicas.max > replicas.min."""

    target_cpu_utilization_percentage: int = Field(80, ge=1, le=100, alias="targetCPUUtilizationPercentage")
    """Average CPU utilisation (percent of requests) the HPA aims for."""


class EnvVar(K8sModel):
    """An environment variable for the model-server container (core/v1 EnvVar)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    """Variable name."""
    value: Annotated[str, StringConstraints(max_length=32768)] | None = None
    """Literal value."""
    value_from: dict[str, Any] | None = Field(None, json_schema_extra=preserve_unknown())
    """Source of the value (core/v1 EnvVarSource: secretKeyRef, configMapKeyRef, fieldRef...)."""


class Serving(K8sModel):
    """A self-hosted OpenAI-compatible server (vLLM, TGI, Ollama...) that the operator deploys
    as a Deployment, a Service, an HPA (when replicas.max > min) and a NetworkPolicy that
    admits only gateway pods."""

    image: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    """Container image of the model server, e.g. vllm/vllm-openai:v0.6.3."""
    args: list[Annotated[str, StringConstraints(max_length=4096)]] | None = Field(None, max_length=128)
    """Arguments passed to the image's entrypoint."""
    env: list[EnvVar] | None = Field(None, max_length=128, json_schema_extra=list_map("name"))
    """Environment variables of the model-server container."""
    port: int = Field(8000, ge=1, le=65535)
    """Port the server listens on; it serves the OpenAI API under /v1."""
    readiness_path: Annotated[str, StringConstraints(max_length=1024, pattern=r"^/")] | None = None
    """HTTP path for the readiness probe (e.g. /health for vLLM); without it the probe only
    checks that the port accepts connections."""
    replicas: Replicas = defaulted(Replicas)
    """Pod count bounds."""
    resources: dict[str, Any] | None = Field(None, json_schema_extra=preserve_unknown())
    """Compute resources of the container (core/v1 ResourceRequirements), e.g. GPU limits."""
    node_selector: dict[str, Annotated[str, StringConstraints(max_length=63)]] | None = Field(
        None, max_length=64
    )
    """Node labels the pods must match."""
    tolerations: list[dict[str, Any]] | None = Field(
        None, max_length=64, json_schema_extra={"items": {"type": "object", **preserve_unknown()}}
    )
    """Taints the pods tolerate (core/v1 Toleration), e.g. for GPU nodes."""
    autoscaling: Autoscaling = defaulted(Autoscaling)
    """HPA settings, used only when replicas.max > replicas.min."""


class LLMModelSpec(K8sModel):
    """Desired state of an LLMModel."""

    cel_rules = (
        CelRule(
            rule="has(self.endpoint) != has(self.serving)",
            message="exactly one of endpoint or serving must be set",
            reason="FieldValueInvalid",
        ),
        CelRule(
            rule="!has(self.serving) || self.provider == 'openai'",
            message="a serving model must use provider openai (its server speaks the OpenAI API)",
            field_path=".provider",
            reason="FieldValueInvalid",
        ),
        CelRule(
            rule="!has(self.maxOutputTokens) || self.maxOutputTokens <= self.contextWindow",
            message="maxOutputTokens must not exceed contextWindow",
            field_path=".maxOutputTokens",
            reason="FieldValueInvalid",
        ),
    )

    tier: Tier
    """Service tier the model belongs to; requests may name a tier instead of a model."""
    provider: Provider = "openai"
    """API the upstream speaks: openai (any OpenAI-compatible server) or anthropic (the
    Anthropic Messages API; the gateway translates)."""
    upstream_model: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    """Model id sent upstream; defaults to metadata.name."""
    context_window: int = Field(ge=1)
    """Maximum prompt plus completion tokens the model accepts."""
    max_output_tokens: int | None = Field(None, ge=1)
    """Maximum completion tokens the model produces."""
    pricing: Pricing = defaulted(Pricing)
    """List prices for cost accounting."""
    expected_latency_ms: int | None = Field(None, ge=0)
    """Prior for the typical response latency in milliseconds, used for scoring until
    observed values exist."""
    availability: float | None = Field(None, ge=0, le=1)
    """Prior for the fraction of successful requests (0..1), used for scoring until observed
    values exist."""
    capabilities: list[Capability] = Field(
        default_factory=lambda: list(DEFAULT_CAPABILITIES),
        min_length=1,
        max_length=3,
        json_schema_extra={**list_set(), "default": list(DEFAULT_CAPABILITIES)},
    )
    """APIs the model serves: chat, completions, embeddings."""
    max_data_classification: DataClassification = "internal"
    """The most sensitive data this model may receive."""
    region: Annotated[str, StringConstraints(min_length=1, max_length=63)] | None = None
    """Where the model runs, for data-residency rules (e.g. EU)."""
    endpoint: Endpoint | None = None
    """An external or already running server. Exactly one of endpoint or serving."""
    serving: Serving | None = None
    """A server the operator deploys. Exactly one of endpoint or serving."""


class LLMModelStatus(LenientModel):
    """Observed state of an LLMModel, written by the operator."""

    conditions: list[Condition] | None = Field(None, max_length=16, json_schema_extra=list_map("type"))
    """Current observations; Ready tells whether the gateway can route to the model."""
    observed_generation: int | None = Field(None, ge=0)
    """The metadata.generation last processed by the operator."""
    endpoint: Annotated[str, StringConstraints(max_length=2048)] | None = None
    """Resolved URL the gateway calls."""
    replicas: int | None = Field(None, ge=0)
    """Model-server pods that exist (serving models only)."""
    ready_replicas: int | None = Field(None, ge=0)
    """Model-server pods that are ready (serving models only)."""


class LLMModel(K8sModel):
    """LLMModel is one model the gateway may route to: an external or already running
    endpoint, or a self-hosted server that the operator deploys."""

    # The name feeds child object names (llmm-<name>), which must be DNS labels.
    cel_rules = (
        CelRule(
            rule=(
                "!has(self.spec.serving) || (self.metadata.name.size() <= "
                f"{SERVING_NAME_MAX} && self.metadata.name.matches('{DNS_LABEL_PATTERN}'))"
            ),
            message=(
                f"a serving model's name must be a DNS label of at most {SERVING_NAME_MAX} characters "
                "(it names the Deployment and Service llmm-<name>)"
            ),
            reason="FieldValueInvalid",
        ),
    )

    api_version: Literal["llmplatform.io/v1alpha1"] = "llmplatform.io/v1alpha1"
    kind: Literal["LLMModel"] = "LLMModel"
    metadata: ObjectMeta
    spec: LLMModelSpec
    status: LLMModelStatus | None = None
