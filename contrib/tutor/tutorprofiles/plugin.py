"""
Run profiles beside a Tutor LMS.

- A ``profiles`` compose service (for ``tutor local`` and ``tutor dev``) on the Tutor network, so
  server-to-server calls go to ``http://lms:8000`` while browsers use the LMS's public URL.
- Its client secret is generated once and kept in ``config.yml`` (``CONFIG_UNIQUE``).
- ``tutor local do init`` registers the OAuth application in the LMS exactly as Tutor core does
  for Studio: ``manage_user`` then ``create_dot_application ... --update``.
- The LMS's settings list the app's front-channel sign-out in ``IDA_LOGOUT_URI_LIST``, as Tutor
  lists Studio's ``/logout/``, so signing out of the LMS signs out of the app too.

The image is built from the profiles repository's Dockerfile (``docker build -t profiles .``);
set ``PROFILES_DOCKER_IMAGE`` to use another tag.
"""

from tutor import hooks

hooks.Filters.CONFIG_DEFAULTS.add_items(
    [
        ("PROFILES_DOCKER_IMAGE", "profiles:latest"),
        # Where browsers reach the app. The redirect URIs registered in the LMS are built from
        # it, and the LMS compares them letter for letter. A subdomain of the LMS, as Studio's
        # is, makes the app same-site with it: only then does the browser send the app's
        # SameSite=Lax cookie to the front-channel sign-out the LMS's logout page loads.
        ("PROFILES_PUBLIC_URL", "http://profiles.{{ LMS_HOST }}:{{ PROFILES_HOST_PORT }}"),
        ("PROFILES_HOST_PORT", "8080"),
        ("PROFILES_OAUTH2_CLIENT_ID", "profiles"),
        ("PROFILES_LMS_USER", "profiles"),
    ]
)

hooks.Filters.CONFIG_UNIQUE.add_items(
    [
        ("PROFILES_OAUTH2_SECRET", "{{ 32|random_string }}"),
    ]
)

hooks.Filters.ENV_PATCHES.add_item(
    (
        "local-docker-compose-services",
        """
profiles:
  image: {{ PROFILES_DOCKER_IMAGE }}
  environment:
    LMS_URL: "{% if ENABLE_HTTPS %}https{% else %}http{% endif %}://{{ LMS_HOST }}"
    LMS_INTERNAL_URL: "http://lms:8000"
    LMS_CLIENT_ID: "{{ PROFILES_OAUTH2_CLIENT_ID }}"
    LMS_CLIENT_SECRET: "{{ PROFILES_OAUTH2_SECRET }}"
    PUBLIC_URL: "{{ PROFILES_PUBLIC_URL }}"
    LMS_LOGOUT: "true"
    BIND: "0.0.0.0:8080"
    DATABASE_URL: "sqlite:///data/profiles.db"
  ports:
    - "{{ PROFILES_HOST_PORT }}:8080"
  volumes:
    - ../../data/profiles:/data
  restart: unless-stopped
  depends_on:
    - permissions
    - lms
""",
    )
)

# The image runs as uid 10001; Tutor's permissions job makes the bind-mounted data folder its own.
hooks.Filters.ENV_PATCHES.add_items(
    [
        (
            "local-docker-compose-permissions-volumes",
            "- ../../data/profiles:/mounts/profiles",
        ),
        ("local-docker-compose-permissions-command", "setowner 10001 /mounts/profiles"),
    ]
)

# The LMS's logout page loads each of these URLs, plus ?no_redirect=1, in a hidden iframe.
hooks.Filters.ENV_PATCHES.add_item(
    (
        "openedx-lms-common-settings",
        """
# profiles: signing out of the LMS signs out of profiles too
IDA_LOGOUT_URI_LIST.append("{{ PROFILES_PUBLIC_URL }}/frontchannel-logout/")
""",
    )
)

# Tutor dev serves the LMS on port 8000 of the public host.
hooks.Filters.ENV_PATCHES.add_item(
    (
        "local-docker-compose-dev-services",
        """
profiles:
  environment:
    LMS_URL: "http://{{ LMS_HOST }}:8000"
""",
    )
)

hooks.Filters.CLI_DO_INIT_TASKS.add_item(
    (
        "lms",
        """
./manage.py lms manage_user {{ PROFILES_LMS_USER }} {{ PROFILES_LMS_USER }}@openedx --unusable-password
./manage.py lms create_dot_application \\
    --grant-type authorization-code \\
    --redirect-uris "{{ PROFILES_PUBLIC_URL }}/authorize/ {{ PROFILES_PUBLIC_URL }}/signed-out/" \\
    --client-id {{ PROFILES_OAUTH2_CLIENT_ID }} \\
    --client-secret {{ PROFILES_OAUTH2_SECRET }} \\
    --scopes user_id \\
    --skip-authorization \\
    --update \\
    profiles {{ PROFILES_LMS_USER }}
""",
    )
)
