"""load_manifests: folders of multi-document YAML, Secrets in both encodings."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmplatform.render import ManifestError, hash_api_key, load_manifests, render
from llmplatform.render.secrets import SecretStore, decode_secret


def test_splits_resources_secrets_and_other_kinds(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.yaml").write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n---\n"
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: team-a}\nstringData: {k: v}\n---\n"
    )
    (tmp_path / "sub" / "b.yml").write_text(
        "apiVersion: v1\nkind: List\nitems:\n"
        "- apiVersion: llmplatform.io/v1alpha1\n  kind: TenantQuota\n"
        "  metadata: {name: q, namespace: team-a}\n  spec: {}\n"
    )
    (tmp_path / "notes.txt").write_text("kind: Secret\n")
    manifests = load_manifests(tmp_path)
    assert [r["kind"] for r in manifests.resources] == ["TenantQuota"]
    assert [s["metadata"]["name"] for s in manifests.secrets] == ["s"]
    assert [o["kind"] for o in manifests.other] == ["Namespace"]


def test_rejects_documents_that_are_not_objects(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ManifestError, match=r"x\.yaml"):
        load_manifests(tmp_path)


def test_secret_data_and_string_data() -> None:
    secret = {"data": {"a": "aGVsbG8=", "bad": "***"}, "stringData": {"b": "world", "a": "override"}}
    assert decode_secret(secret) == {"a": b"override", "b": b"world"}


def test_secret_store_repr_shows_names_only() -> None:
    store = SecretStore([{"metadata": {"name": "s", "namespace": "n"}, "stringData": {"k": "TOPSECRET"}}])
    assert "TOPSECRET" not in repr(store) and "n/s" in repr(store)
    assert store.value("n", "s", "k") == b"TOPSECRET"
    assert store.problem("n", "s", "other") == "Secret n/s has no key 'other'"


def test_duplicate_input_is_refused() -> None:
    s = {"metadata": {"name": "s", "namespace": "n"}, "stringData": {"k": "v"}}
    with pytest.raises(ValueError, match="duplicate Secret"):
        render([], [s, s])
    q = {
        "apiVersion": "llmplatform.io/v1alpha1",
        "kind": "TenantQuota",
        "metadata": {"name": "q", "namespace": "n"},
    }
    with pytest.raises(ValueError, match="more than once"):
        render([{**q, "spec": {}}, {**q, "spec": {}}], [])


def test_other_kinds_are_refused_by_render() -> None:
    with pytest.raises(ValueError, match="Namespace"):
        render([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}], [])


def test_examples_secret_keys_hash_like_the_gateway_will() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    manifests = load_manifests(examples)
    result = render(manifests.resources, manifests.secrets)
    team_b = next(t for t in result.gateway_config.tenants if t.namespace == "team-b")
    assert team_b.keys[0].sha256 == hash_api_key("llmp-team-b-FAKE-example-key")
