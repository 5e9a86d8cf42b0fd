"""
Renders the plugin with a real Tutor in temporary TUTOR_ROOTs and checks what it produces: the
compose files as `docker compose config` reads them (through `tutor local|dev dc config`), the
Caddyfile, the LMS's settings, the init task, and the image build `tutor images build` runs.
Run by tests/run.sh, which installs tutor and the plugin into a throwaway virtualenv.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import unittest

from tutor import config as tutor_config
from tutor import env, hooks

ROOT = os.environ["TUTOR_ROOT"]
# The profiles repository (its Dockerfile is the build the plugin's image must repeat).
REPOSITORY = os.environ["PROFILES_REPOSITORY_ROOT"]
TUTOR = os.path.join(os.path.dirname(sys.executable), "tutor")


def tutor(*args: str, root: str = ROOT, extra_env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [TUTOR, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "TUTOR_ROOT": root, **(extra_env or {})},
    )
    if result.returncode != 0:
        raise AssertionError(
            f"`tutor {shlex.join(args)}` (TUTOR_ROOT={root}) exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def compose_config(mode: str, root: str = ROOT) -> dict:
    """The project `tutor local|dev` runs, as `docker compose config` resolves and validates it."""
    out = tutor(mode, "dc", "config", "--format", "json", root=root)
    # Tutor echoes the docker compose command line before compose prints the JSON.
    return json.loads(out[out.index("\n{") + 1 :] if not out.startswith("{") else out)


def read(root: str, *path: str) -> str:
    with open(os.path.join(root, "env", *path), encoding="utf-8") as f:
        return f.read()


def new_root(name: str, *settings: str) -> str:
    root = f"{ROOT}-{name}"
    tutor("plugins", "enable", "profiles", root=root)
    tutor("config", "save", *[arg for s in settings for arg in ("--set", s)], root=root)
    return root


def instructions(dockerfile: str) -> list[str]:
    """A Dockerfile's instructions, continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    lines = [line.strip() for line in joined.splitlines()]
    return [" ".join(line.split()) for line in lines if line and not line.startswith("#")]


def from_the_build_context(step: str) -> str:
    """The plugin's step as the repository's Dockerfile writes it: images without `docker.io/`,
    `COPY --from=profiles-src /a /b dest` as `COPY a b dest`."""
    step = re.sub(r"^FROM docker\.io/", "FROM ", step)
    if step.startswith("COPY --from=profiles-src "):
        *sources, dest = step.split()[2:]
        step = " ".join(["COPY", *(s.removeprefix("/") for s in sources), dest])
    return step


def setUpModule() -> None:
    # The default project every test reads; tests that change settings make roots of their own.
    tutor("plugins", "enable", "profiles")
    tutor("config", "save")


class PluginTest(unittest.TestCase):
    config: dict

    @classmethod
    def setUpClass(cls) -> None:
        hooks.Actions.CORE_READY.do()
        hooks.Actions.PROJECT_ROOT_READY.do(ROOT)
        cls.config = tutor_config.load(ROOT)
        cls.local = compose_config("local")

    def test_the_client_secret_is_generated_once_and_kept(self) -> None:
        secret = self.config["PROFILES_OAUTH2_SECRET"]
        self.assertRegex(secret, r"^\S{32}$")
        tutor("config", "save")
        again = tutor("config", "printvalue", "PROFILES_OAUTH2_SECRET").strip()
        self.assertEqual(again, secret)

    def test_the_app_has_its_own_host_under_the_lms(self) -> None:
        self.assertEqual(
            tutor("config", "printvalue", "PROFILES_HOST").strip(), "profiles.local.openedx.io"
        )

    def test_tutor_local_runs_the_built_image_on_tutors_network_calling_the_lms_internally(
        self,
    ) -> None:
        service = self.local["services"]["profiles"]
        self.assertEqual(service["image"], "profiles:0.2.0")
        self.assertEqual(list(service["networks"]), ["default"])
        self.assertEqual(self.local["networks"]["default"]["name"], "tutor_local_default")
        self.assertEqual(
            service["environment"],
            {
                "LMS_URL": "http://local.openedx.io",
                "LMS_INTERNAL_URL": "http://lms:8000",
                "LMS_CLIENT_ID": "profiles",
                "LMS_CLIENT_SECRET": self.config["PROFILES_OAUTH2_SECRET"],
                "PUBLIC_URL": "http://profiles.local.openedx.io",
                "LMS_LOGOUT": "true",
                "BIND": "0.0.0.0:8080",
                "DATABASE_URL": "sqlite:///data/profiles.db",
            },
        )
        self.assertEqual(set(service["depends_on"]), {"lms", "permissions"})
        self.assertEqual(service["restart"], "unless-stopped")
        [volume] = service["volumes"]
        self.assertEqual(volume["source"], os.path.join(ROOT, "data", "profiles"))
        self.assertEqual(volume["target"], "/data")

    def test_tutor_local_reaches_the_app_only_through_caddy(self) -> None:
        self.assertNotIn("ports", self.local["services"]["profiles"])
        caddy = self.local["services"]["caddy"]
        self.assertEqual(caddy["environment"]["default_site_port"], ":80")

    def test_caddy_proxies_the_apps_host_to_the_app(self) -> None:
        caddyfile = read(ROOT, "apps", "caddy", "Caddyfile")
        block = re.search(
            r"^profiles\.local\.openedx\.io\{\$default_site_port\} \{\n(.*?)^\}", caddyfile, re.M | re.S
        )
        self.assertIsNotNone(block, caddyfile)
        assert block is not None
        self.assertEqual(block.group(1).strip(), 'import proxy "profiles:8080"')

    def test_profiles_host_and_https_make_the_public_url_the_route_and_the_logout_entry(
        self,
    ) -> None:
        root = new_root(
            "https", "ENABLE_HTTPS=true", "LMS_HOST=lms.example.org", "PROFILES_HOST=me.example.org"
        )
        local = compose_config("local", root)
        environment = local["services"]["profiles"]["environment"]
        self.assertEqual(environment["PUBLIC_URL"], "https://me.example.org")
        self.assertEqual(environment["LMS_URL"], "https://lms.example.org")
        self.assertEqual(environment["LMS_INTERNAL_URL"], "http://lms:8000")
        # Caddy then serves every host on 443, the app's included, with a certificate of its own.
        self.assertEqual(local["services"]["caddy"]["environment"]["default_site_port"], "")
        self.assertIn(
            'me.example.org{$default_site_port} {\n    import proxy "profiles:8080"\n}',
            read(root, "apps", "caddy", "Caddyfile"),
        )
        settings = read(root, "apps", "openedx", "settings", "lms", "production.py")
        self.assertIn(
            'IDA_LOGOUT_URI_LIST.append("https://me.example.org/frontchannel-logout/")', settings
        )
        config = tutor_config.load(root)
        [(_, task)] = hooks.Filters.CLI_DO_INIT_TASKS.iterate_from_context(
            hooks.Contexts.app("profiles").name
        )
        self.assertIn(
            '--redirect-uris "https://me.example.org/authorize/ https://me.example.org/signed-out/ ',
            env.render_str(config, task),
        )

    def test_tutor_dev_publishes_the_app_on_port_8080_and_points_browsers_at_8000(self) -> None:
        dev = compose_config("dev")
        service = dev["services"]["profiles"]
        self.assertEqual(dev["networks"]["default"]["name"], "tutor_dev_default")
        self.assertEqual(service["image"], "profiles:0.2.0")
        environment = service["environment"]
        self.assertEqual(environment["LMS_URL"], "http://local.openedx.io:8000")
        self.assertEqual(environment["PUBLIC_URL"], "http://profiles.local.openedx.io:8080")
        self.assertEqual(environment["LMS_INTERNAL_URL"], "http://lms:8000")
        [port] = service["ports"]
        self.assertEqual((port["published"], port["target"]), ("8080", 8080))
        self.assertNotIn("caddy", dev["services"])

    def test_the_jobs_project_validates_beside_the_services(self) -> None:
        # `tutor local do init` runs the lms-job service of these files together.
        files = [
            os.path.join(ROOT, "env", "local", name)
            for name in ("docker-compose.yml", "docker-compose.prod.yml", "docker-compose.jobs.yml")
        ]
        out = subprocess.run(
            ["docker", "compose", *[a for f in files for a in ("-f", f)], "--project-name",
             "tutor_local", "config", "--services"],
            check=True, capture_output=True, text=True,
        ).stdout.split()
        self.assertIn("lms-job", out)
        self.assertIn("profiles", out)

    def test_the_data_folder_is_made_the_app_users_own(self) -> None:
        permissions = self.local["services"]["permissions"]
        self.assertIn(
            ("/mounts/profiles", os.path.join(ROOT, "data", "profiles")),
            [(v["target"], v["source"]) for v in permissions["volumes"]],
        )
        self.assertIn("setowner 10001 /mounts/profiles", read(ROOT, "apps", "permissions", "setowners.sh"))

    def test_the_lms_logout_page_loads_the_front_channel_sign_out_beside_studios(self) -> None:
        for mode, studio, profiles in [
            (
                "production",
                "http://studio.local.openedx.io/logout/",
                "http://profiles.local.openedx.io/frontchannel-logout/",
            ),
            (
                "development",
                "http://studio.local.openedx.io:8001/logout/",
                "http://profiles.local.openedx.io:8080/frontchannel-logout/",
            ),
        ]:
            settings = read(ROOT, "apps", "openedx", "settings", "lms", f"{mode}.py")
            lines = [line for line in settings.splitlines() if "IDA_LOGOUT_URI_LIST" in line]
            print(f"\n{mode}.py:\n" + "\n".join(lines), file=sys.stderr)
            # The rendered lines, run on the list the LMS's own settings start from.
            namespace: dict = {"IDA_LOGOUT_URI_LIST": []}
            exec("\n".join(line.strip() for line in lines), namespace)
            self.assertEqual(namespace["IDA_LOGOUT_URI_LIST"], [studio, profiles], mode)

    def test_init_registers_the_application_like_tutor_does_for_studio(self) -> None:
        tasks = [
            (service, env.render_str(self.config, task))
            for service, task in hooks.Filters.CLI_DO_INIT_TASKS.iterate_from_context(
                hooks.Contexts.app("profiles").name
            )
        ]
        self.assertEqual([service for service, _ in tasks], ["lms"])
        script = " ".join(
            line for line in tasks[0][1].replace("\\\n", " ").splitlines() if not line.startswith("#")
        )
        script = " ".join(script.split())
        self.assertIn(
            "./manage.py lms manage_user profiles profiles@openedx --unusable-password", script
        )
        secret = self.config["PROFILES_OAUTH2_SECRET"]
        # tutor local (through Caddy) and tutor dev (port 8080), sign-in and sign-out return.
        expected = (
            "./manage.py lms create_dot_application --grant-type authorization-code "
            '--redirect-uris "http://profiles.local.openedx.io/authorize/ '
            "http://profiles.local.openedx.io/signed-out/ "
            "http://profiles.local.openedx.io:8080/authorize/ "
            'http://profiles.local.openedx.io:8080/signed-out/" --client-id profiles '
            f"--client-secret {secret} --scopes user_id --skip-authorization --update "
            "profiles profiles"
        )
        self.assertIn(expected, script)
        self.assertIsNone(re.search(r"{{|}}|{%|%}", script), "fully rendered")

    def test_launch_builds_the_image_and_lists_the_apps_address(self) -> None:
        for mode, host in [("local", "profiles.local.openedx.io"), ("dev", "profiles.local.openedx.io:8080")]:
            self.assertIn("profiles", hooks.Filters.IMAGES_BUILD_REQUIRED.apply([], mode))
            hosts = [env.render_str(self.config, h) for h in hooks.Filters.APP_PUBLIC_HOSTS.iterate(mode)]
            self.assertIn(host, hosts, mode)
        self.assertIn(("profiles", "profiles:0.2.0"), [
            (name, env.render_str(self.config, tag)) for name, tag in hooks.Filters.IMAGES_PUSH.iterate()
        ])
        # Nothing publishes the image: `tutor images pull all` must not try to pull it.
        self.assertNotIn("profiles", [name for name, _ in hooks.Filters.IMAGES_PULL.iterate()])


class ImageBuildTest(unittest.TestCase):
    """`tutor images build profiles`: the command Tutor runs, and the Dockerfile it builds."""

    def build_command(self, root: str) -> list[str]:
        # Tutor always builds with `docker buildx build`; a `docker` that only records its
        # arguments shows the command without needing buildx or a daemon.
        shim = os.path.join(root, "shim")
        os.makedirs(shim, exist_ok=True)
        record = os.path.join(shim, "argv")
        with open(os.path.join(shim, "docker"), "w", encoding="utf-8") as f:
            f.write(f'#!/bin/sh\nprintf "%s\\n" "$@" > {shlex.quote(record)}\n')
        os.chmod(os.path.join(shim, "docker"), 0o755)
        tutor(
            "images", "build", "profiles",
            root=root,
            extra_env={"PATH": shim + os.pathsep + os.environ["PATH"]},
        )
        with open(record, encoding="utf-8") as f:
            return f.read().splitlines()

    def test_the_image_builds_from_a_mounted_checkout_through_the_profiles_src_stage(self) -> None:
        root = new_root("mounted")
        # Tutor recognises the checkout by its folder's name, as it does edx-platform's.
        checkout = os.path.join(root, "src", "profiles")
        os.makedirs(os.path.dirname(checkout))
        os.symlink(REPOSITORY, checkout)
        tutor("mounts", "add", checkout, root=root)
        argv = self.build_command(root)
        context = os.path.join(root, "env", "plugins", "profiles", "build", "profiles")
        self.assertEqual(argv[:3], ["buildx", "build", "--tag=profiles:0.2.0"])
        self.assertIn(f"--build-context=profiles-src={checkout}", argv)
        self.assertIn("--output=type=docker", argv)
        self.assertEqual(argv[-1], context)
        self.assertTrue(os.path.isfile(os.path.join(context, "Dockerfile")))

    def test_without_a_checkout_or_repository_the_build_says_what_to_do(self) -> None:
        dockerfile = read(ROOT, "plugins", "profiles", "build", "profiles", "Dockerfile")
        stage = dockerfile[dockerfile.index("AS profiles-src") : dockerfile.index("AS build")]
        self.assertIn("tutor mounts add /path/to/profiles", stage)
        self.assertIn("PROFILES_REPOSITORY", stage)
        self.assertIn("exit 1", stage)

    def test_a_repository_is_added_at_its_version(self) -> None:
        root = new_root(
            "repository",
            "PROFILES_REPOSITORY=https://git.example.com/profiles.git",
            "PROFILES_REPOSITORY_VERSION=v1.2.3",
        )
        dockerfile = read(root, "plugins", "profiles", "build", "profiles", "Dockerfile")
        self.assertIn(
            "FROM scratch AS profiles-src\nADD https://git.example.com/profiles.git#v1.2.3 /\n",
            dockerfile,
        )

    def test_the_build_is_the_repositorys_dockerfile_with_the_sources_from_profiles_src(
        self,
    ) -> None:
        # The plugin cannot build from the repository's Dockerfile itself (its context is the
        # rendered folder), so it repeats it; this keeps the two the same build.
        plugin = read(ROOT, "plugins", "profiles", "build", "profiles", "Dockerfile")
        plugin = plugin[plugin.index("FROM docker.io/rust:") :]
        steps = [from_the_build_context(step) for step in instructions(plugin)]
        with open(os.path.join(REPOSITORY, "Dockerfile"), encoding="utf-8") as f:
            repository = instructions(f.read())
        self.assertEqual(steps, repository)


if __name__ == "__main__":
    unittest.main(verbosity=2)
