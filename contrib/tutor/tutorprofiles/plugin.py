"""
Run profiles beside a Tutor LMS, the way Tutor's own plugins run their apps (tutor-notes is the
model).

- The app has a host of its own, ``PROFILES_HOST`` (default ``profiles.{{ LMS_HOST }}``), served
  by Tutor's Caddy (https when ``ENABLE_HTTPS``) under ``tutor local``, and on port 8080 under
  ``tutor dev``. A subdomain of the LMS puts the app on the LMS's site, which the LMS's sign-out
  needs to sign the browser out here too.
- A ``profiles`` compose service on Tutor's network: browsers use the LMS's public URL, the
  app's own calls go to ``http://lms:8000``.
- ``tutor images build profiles`` builds its image from the profiles repository
  (``PROFILES_REPOSITORY`` at ``PROFILES_REPOSITORY_VERSION``), or from a local checkout added with
  ``tutor mounts add /path/to/profiles``; ``tutor local launch`` builds it first.
- Its secrets (the client secrets, ``SECRET_KEYS``, the MySQL password) are generated once and
  kept in ``config.yml`` (``CONFIG_UNIQUE``); on Kubernetes they reach the pods through the
  Secret ``profiles``, never a ConfigMap or the image.
- ``PROFILES_DATABASE=mysql`` (the default) keeps the app's data in Tutor's MySQL, in a database
  and user that the ``mysql`` init task creates, as tutor-notes does; ``sqlite`` keeps it in a
  file under ``data/profiles`` (one machine only).
- ``tutor local|k8s do init`` creates that database, registers two OAuth applications in the LMS
  exactly as Tutor core does for Studio (``profiles-sso`` for https or the LMS's host,
  ``profiles-sso-dev`` for ``tutor dev``'s plain-http port 8080), then runs ``profiles migrate``.
- ``tutor k8s``: a Deployment ``profiles`` of ``PROFILES_REPLICAS`` pods, a Service ``profiles``
  on port 8080 (where the Caddy route sends), and the init Job ``profiles-job``.
- The LMS's settings list the app's front-channel sign-out in ``IDA_LOGOUT_URI_LIST``, as Tutor
  lists Studio's ``/logout/``, so signing out of the LMS signs out of the app too.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import typing as t
from glob import glob
from importlib import resources

from tutor import hooks

from .__about__ import __version__

HERE = resources.files("tutorprofiles")

hooks.Filters.CONFIG_DEFAULTS.add_items(
    [
        ("PROFILES_VERSION", __version__),
        # Built here, never pulled: no registry publishes profiles. Point it at your registry to
        # `tutor images push profiles` there.
        ("PROFILES_DOCKER_IMAGE", "profiles:{{ PROFILES_VERSION }}"),
        # Where browsers reach the app. The redirect URIs registered in the LMS are built from
        # it, and the LMS compares them letter for letter. A subdomain of the LMS, as Studio's
        # is, makes the app same-site with it: only then does the browser send the app's
        # SameSite=Lax cookie to the front-channel sign-out the LMS's logout page loads.
        ("PROFILES_HOST", "profiles.{{ LMS_HOST }}"),
        # Two applications, as Tutor registers Studio's (cms-sso, cms-sso-dev): the production
        # one accepts only PROFILES_HOST's own scheme and port, never `tutor dev`'s plain http.
        ("PROFILES_OAUTH2_CLIENT_ID", "profiles"),
        ("PROFILES_OAUTH2_CLIENT_ID_DEV", "profiles-dev"),
        ("PROFILES_LMS_USER", "profiles"),
        # The source `tutor images build profiles` builds, unless a checkout is mounted; empty
        # until you name one (a git URL the build can reach).
        ("PROFILES_REPOSITORY", ""),
        ("PROFILES_REPOSITORY_VERSION", "main"),
        # `mysql`: Tutor's MySQL (MYSQL_HOST, MYSQL_PORT), in the database and user below, which
        # the `mysql` init task creates. `sqlite`: a file in data/profiles, for one machine.
        # `tutor k8s` runs replicas, which cannot share a file: there, `sqlite` gets one pod
        # with a volume of its own.
        ("PROFILES_DATABASE", "mysql"),
        ("PROFILES_MYSQL_DATABASE", "profiles"),
        ("PROFILES_MYSQL_USERNAME", "profiles"),
        # `tutor k8s`: two pods, the fewest with which a rolling update or the loss of a node
        # leaves the app serving (every sign-in and session is in the database, so any pod
        # serves any request).
        ("PROFILES_REPLICAS", 2),
    ]
)

hooks.Filters.CONFIG_UNIQUE.add_items(
    [
        ("PROFILES_OAUTH2_SECRET", "{{ 32|random_string }}"),
        ("PROFILES_OAUTH2_SECRET_DEV", "{{ 32|random_string }}"),
        # The app's SECRET_KEYS: base64 keys, newest first, comma-separated (docs/kubernetes.md,
        # "Rotating the keys").
        ("PROFILES_SECRET_KEYS", "{{ 32|profiles_random_base64 }}"),
        ("PROFILES_MYSQL_PASSWORD", "{{ 24|random_string }}"),
    ]
)


def _random_base64(length: int) -> str:
    """`length` random bytes in base64, what `openssl rand -base64 32` prints for 32."""
    return base64.b64encode(secrets.token_bytes(length)).decode()


def _digest(*values: t.Any) -> str:
    """A short digest of the values, for the annotation that rolls the pods when they change."""
    return hashlib.sha256("\0".join(str(v) for v in values).encode()).hexdigest()[:16]


hooks.Filters.ENV_TEMPLATE_FILTERS.add_items(
    [("profiles_random_base64", _random_base64), ("profiles_digest", _digest)]
)

# The image: rendered into env/plugins/profiles/build/profiles and built from there.
hooks.Filters.IMAGES_BUILD.add_item(
    (
        "profiles",
        ("plugins", "profiles", "build", "profiles"),
        "{{ PROFILES_DOCKER_IMAGE }}",
        (),
    )
)
# No IMAGES_PULL: nothing publishes the image, and `tutor images pull all` must not fail on it.
hooks.Filters.IMAGES_PUSH.add_item(("profiles", "{{ PROFILES_DOCKER_IMAGE }}"))


@hooks.Filters.IMAGES_BUILD_REQUIRED.add()
def _build_profiles_on_launch(
    image_names: list[str], context_name: t.Literal["local", "dev"]
) -> list[str]:
    # `tutor local|dev launch` starts the service right after building: the image must exist.
    image_names.append("profiles")
    return image_names


@hooks.Filters.IMAGES_BUILD_MOUNTS.add()
def _build_profiles_from_a_checkout(
    mounts: list[tuple[str, str]], path: str
) -> list[tuple[str, str]]:
    # `tutor mounts add /path/to/profiles` replaces the Dockerfile's `profiles-src` stage with the
    # checkout (`docker buildx build --build-context profiles-src=/path/to/profiles`), as
    # `tutor mounts add /path/to/edx-platform` does for the openedx image.
    if os.path.basename(os.path.normpath(path)) == "profiles":
        mounts.append(("profiles", "profiles-src"))
    return mounts


@hooks.Filters.APP_PUBLIC_HOSTS.add()
def _profiles_public_hosts(
    hosts: list[str], context_name: t.Literal["local", "dev"]
) -> list[str]:
    # What `tutor local|dev launch` lists as the platform's addresses.
    if context_name == "dev":
        hosts.append("{{ PROFILES_HOST }}:8080")
    else:
        hosts.append("{{ PROFILES_HOST }}")
    return hosts


# `tutor local|dev|k8s do init`, in this order, each in the `<service>-job` of its service: the
# database and user (in Tutor's mysql-job), the OAuth applications (lms-job), the migrations
# (profiles-job).
for service in ("mysql", "lms", "profiles"):
    with open(HERE / "templates" / "profiles" / "tasks" / service / "init", encoding="utf-8") as f:
        hooks.Filters.CLI_DO_INIT_TASKS.add_item((service, f.read()))

hooks.Filters.ENV_TEMPLATE_ROOTS.add_item(str(HERE / "templates"))
# The image's build context, and the Kubernetes Secret (kustomization-resources lists it).
# templates/profiles/partials is not rendered on its own: patches include it.
hooks.Filters.ENV_TEMPLATE_TARGETS.add_items([("profiles/build", "plugins"), ("profiles/k8s", "plugins")])

# One file per patch, named for the patch: caddyfile, local-docker-compose-services, ...
for path in sorted(glob(str(HERE / "patches" / "*"))):
    with open(path, encoding="utf-8") as f:
        hooks.Filters.ENV_PATCHES.add_item((os.path.basename(path), f.read()))
