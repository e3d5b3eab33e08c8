"""The request-time gateway: an OpenAI-compatible enforcement point for the rendered config.

Why a separate package from the rendering core: the gateway only *consumes* the versioned
gateway config (`llmplatform.contract.config`); it never sees Kubernetes objects except
through `--manifests`, which calls the same `render` the operator calls.
"""
