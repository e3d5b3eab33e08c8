"""Whether a config that loaded cleanly may replace the one serving.

Why: a config can be valid and still be a disaster. When every LLMModel fails to render (a
bad Secret reference, a typo in a shared field, a half-applied change), the render has no
models; when the TenantQuota index comes up empty, it has no keys. Served, either turns every
request into a 404 or a 401 while /readyz says 200. The gateway treats such a reload like a
broken config: the previous config keeps serving, one log line says why, the
`llmplatform_config_rejected_total{reason}` metric counts it and /readyz shows it.

Rules, against the serving config (the first config a process loads is never refused; there
is nothing to keep):
- `no_models`: the new config has no model while the serving one has some;
- `no_keys`: the new config has no API key while the serving one has some;
- `models_removed` / `keys_removed`: it removes more than `max_removed` (a share, 0.5 by
  default, `--reload-max-removed`) of the serving config's models or keys in one change.
Removing many models on purpose: do it in steps, raise the flag, or restart the gateway.
"""

from __future__ import annotations

from llmplatform.gateway.compiled import Compiled


def model_ids(compiled: Compiled) -> set[str]:
    return {model.id for model in compiled.models.values()}


def refusal(serving: Compiled | None, new: Compiled, max_removed: float) -> tuple[str, str] | None:
    """(reason, message) when `new` must not replace `serving`, else None."""
    if serving is None:
        return None
    for what, old_set, new_set in (
        ("models", model_ids(serving), model_ids(new)),
        ("keys", set(serving.keys), set(new.keys)),
    ):
        if old_set and not new_set:
            return f"no_{what}", f"the new config has no {what} (the serving config has {len(old_set)})"
        removed = len(old_set - new_set)
        if old_set and removed / len(old_set) > max_removed:
            return (
                f"{what}_removed",
                f"the new config removes {removed} of the {len(old_set)} {what} serving "
                f"(more than {max_removed:.0%}, --reload-max-removed)",
            )
    return None
