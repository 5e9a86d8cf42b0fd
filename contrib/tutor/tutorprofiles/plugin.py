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
- Its client secret is generated once and kept in ``config.yml`` (``CONFIG_UNIQUE``).
- ``tutor local do init`` registers the OAuth application in the LMS exactly as Tutor core does
  for Studio: ``manage_user`` then ``create_dot_application ... --update``.
- The LMS's settings list the app's front-channel sign-out in ``IDA_LOGOUT_URI_LIST``, as Tutor
  lists Studio's ``/logout/``, so signing out of the LMS signs out of the app too.
"""

from __future__ import annotations

import os
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
        ("PROFILES_OAUTH2_CLIENT_ID", "profiles"),
        ("PROFILES_LMS_USER", "profiles"),
        # The source `tutor images build profiles` builds, unless a checkout is mounted; empty
        # until you name one (a git URL the build can reach).
        ("PROFILES_REPOSITORY", ""),
        ("PROFILES_REPOSITORY_VERSION", "main"),
    ]
)

hooks.Filters.CONFIG_UNIQUE.add_items(
    [
        ("PROFILES_OAUTH2_SECRET", "{{ 32|random_string }}"),
    ]
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


with open(HERE / "templates" / "profiles" / "tasks" / "lms" / "init", encoding="utf-8") as f:
    hooks.Filters.CLI_DO_INIT_TASKS.add_item(("lms", f.read()))

hooks.Filters.ENV_TEMPLATE_ROOTS.add_item(str(HERE / "templates"))
hooks.Filters.ENV_TEMPLATE_TARGETS.add_item(("profiles/build", "plugins"))

# One file per patch, named for the patch: caddyfile, local-docker-compose-services, ...
for path in sorted(glob(str(HERE / "patches" / "*"))):
    with open(path, encoding="utf-8") as f:
        hooks.Filters.ENV_PATCHES.add_item((os.path.basename(path), f.read()))
