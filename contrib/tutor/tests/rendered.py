"""
What `tutor config save` rendered for Kubernetes, read as `kubectl apply --kustomize` would find
it: every object of every file the kustomization lists, and a container's environment with its
`secretKeyRef`s resolved from the rendered Secret. Shared by test_plugin.py and
test_k8s_processes.py.
"""

from __future__ import annotations

import base64
import os
import typing as t

import yaml


def kustomization(root: str) -> dict:
    with open(os.path.join(root, "env", "kustomization.yml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


def k8s_objects(root: str) -> list[tuple[str, dict]]:
    """(file, object) for every object of every resource file the kustomization lists."""
    objects = []
    for resource in kustomization(root)["resources"]:
        path = os.path.join(root, "env", resource)
        with open(path, encoding="utf-8") as f:
            for document in yaml.safe_load_all(f):
                if document is not None:
                    objects.append((resource, document))
    return objects


def find(objects: t.Iterable[tuple[str, dict]], kind: str, name: str) -> dict:
    found = [o for _, o in objects if o.get("kind") == kind and o["metadata"]["name"] == name]
    if len(found) != 1:
        raise AssertionError(f"{len(found)} {kind} named {name!r} rendered, not one")
    return found[0]


def secret_data(secret: dict) -> dict[str, str]:
    """A Secret's values, from `stringData` and (decoded) `data`."""
    values = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    values.update(secret.get("stringData") or {})
    return values


def container_env(container: dict, secrets: dict[str, dict]) -> dict[str, str]:
    """The container's environment as the kubelet gives it: `value`s, and `secretKeyRef`s read
    from the named Secret (`secrets` by name). `$(VAR)` references are expanded, as Kubernetes
    expands them from the variables defined before."""
    environment: dict[str, str] = {}
    for variable in container.get("env", []):
        if "value" in variable:
            value = str(variable["value"])
            for name, earlier in environment.items():
                value = value.replace(f"$({name})", earlier)
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            value = secret_data(secrets[ref["name"]])[ref["key"]]
        environment[variable["name"]] = value
    return environment


def configmap_files(root: str) -> list[str]:
    """The files the kustomization's configMapGenerator turns into ConfigMaps."""
    files = []
    for generator in kustomization(root).get("configMapGenerator") or []:
        for entry in generator.get("files", []):
            files.append(os.path.join(root, "env", entry.split("=", 1)[-1]))
    return files
