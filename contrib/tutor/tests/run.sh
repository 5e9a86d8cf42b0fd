#!/usr/bin/env bash
# Installs tutor (from PyPI) and this plugin into a throwaway virtualenv, then renders the plugin
# in temporary TUTOR_ROOTs and checks the result, validating the rendered compose files with
# `docker compose config` (the compose plugin is needed; a Docker daemon is not).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
repository="$(cd "$here/../.." && pwd)"
if ! docker compose version >/dev/null 2>&1; then
    echo "contrib/tutor/tests/run.sh: needs \`docker compose\` (the compose v2 plugin) to validate" \
        "the rendered compose files; on CI's machines ../shared/docker-here.sh installs it" >&2
    exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Built from a copy, so setuptools leaves no build/ or .egg-info in the repository.
mkdir "$work/plugin"
cp -r "$here/pyproject.toml" "$here/tutorprofiles" "$work/plugin/"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "tutor>=21,<22" "$work/plugin"
TUTOR_ROOT="$work/root" TUTOR_PLUGINS_ROOT="$work/plugins" PROFILES_REPOSITORY_ROOT="$repository" \
    "$work/venv/bin/python" "$here/tests/test_plugin.py"
