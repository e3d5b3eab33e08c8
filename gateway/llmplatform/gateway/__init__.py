"""The request-time gateway: an OpenAI-compatible enforcement point for the rendered config.

Why a separate package from the rendering core: the gateway only *consumes* the versioned
gateway config (`llmplatform.contract.config`) and never imports the rendering core, the
resource types, CEL or the operator (docs/architecture.md); `llmplatform gateway --manifests`
is composed by the CLI, which hands the gateway a config source that calls the same `render`
the operator calls.
"""
