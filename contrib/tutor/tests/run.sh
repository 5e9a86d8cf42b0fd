#!/usr/bin/env bash
# Installs tutor (from PyPI) and this plugin into a throwaway virtualenv, then renders the plugin
# in temporary TUTOR_ROOTs and checks the result, validating the rendered compose files with
# `docker compose config` (the compose plugin is needed; a Docker daemon is not) and the rendered
# Kubernetes objects with kubernetes-validate (from PyPI), and runs the `mysql` init task against
# the machine's MariaDB (127.0.0.1:3306, root without a password; the `mariadb` client is
# installed from Debian's packages if missing).
#
# PROFILES_K8S_PROCESS_TEST_BIN=/path/to/target/release (a folder holding `profiles` and
# `openedx-standin`) also runs tests/test_k8s_processes.py: the rendered Deployment and Job as
# processes on MariaDB (see that file).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
repository="$(cd "$here/../.." && pwd)"
if ! docker compose version >/dev/null 2>&1; then
    echo "contrib/tutor/tests/run.sh: needs \`docker compose\` (the compose v2 plugin) to validate" \
        "the rendered compose files; on CI's machines ../shared/docker-here.sh installs it" >&2
    exit 1
fi
if ! command -v mariadb >/dev/null 2>&1; then
    { apt-get update -qq && apt-get install -y -qq mariadb-client; } >/dev/null || {
        echo "contrib/tutor/tests/run.sh: needs the \`mariadb\` client (apt-get install mariadb-client)" >&2
        exit 1
    }
fi
if ! mariadb --host=127.0.0.1 --port=3306 --user=root --password= -e 'SELECT 1' >/dev/null; then
    echo "contrib/tutor/tests/run.sh: MariaDB does not answer on 127.0.0.1:3306 as root without a" \
        "password; start it (start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd)" >&2
    exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Built from a copy, so setuptools leaves no build/ or .egg-info in the repository.
mkdir "$work/plugin"
cp -r "$here/pyproject.toml" "$here/tutorprofiles" "$work/plugin/"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "tutor>=21,<22" \
    "kubernetes-validate>=1.31,<2" "$work/plugin"
TUTOR_ROOT="$work/root" TUTOR_PLUGINS_ROOT="$work/plugins" PROFILES_REPOSITORY_ROOT="$repository" \
    "$work/venv/bin/python" "$here/tests/test_plugin.py"
if [ -n "${PROFILES_K8S_PROCESS_TEST_BIN:-}" ]; then
    TUTOR_ROOT="$work/root-processes" TUTOR_PLUGINS_ROOT="$work/plugins" "$work/venv/bin/python" "$here/tests/test_k8s_processes.py"
fi
