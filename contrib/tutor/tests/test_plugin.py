"""
Renders the plugin with a real Tutor in temporary TUTOR_ROOTs and checks what it produces: the
compose files as `docker compose config` reads them (through `tutor local|dev dc config`), the
Caddyfile, the LMS's settings, the init tasks, the image build `tutor images build` runs, and the
Kubernetes objects `tutor k8s` applies, each validated against the Kubernetes schemas (the
kubernetes-validate package); it also runs the `mysql` init task against the machine's MariaDB.
Run by tests/run.sh, which installs tutor and the plugin into a throwaway virtualenv.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
import sys
import unittest

import yaml

import kubernetes_validate
from tutor import config as tutor_config
from tutor import env, hooks

from rendered import configmap_files, container_env, find, k8s_objects, secret_data

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


def init_tasks(config: dict) -> dict[str, str]:
    """The plugin's `do init` tasks, rendered with `config`, by the service whose job runs them."""
    tasks = {}
    for service, task in hooks.Filters.CLI_DO_INIT_TASKS.iterate_from_context(
        hooks.Contexts.app("profiles").name
    ):
        tasks[service] = env.render_str(config, task)
    return tasks


def compose_files_config(root: str, *names: str, mode: str = "local") -> dict:
    files = [os.path.join(root, "env", mode, name) for name in names]
    out = subprocess.run(
        ["docker", "compose", *[a for f in files for a in ("-f", f)], "--project-name",
         f"tutor_{mode}", "config", "--format", "json"],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def setUpModule() -> None:
    # The default project every test reads; tests that change settings make roots of their own.
    tutor("plugins", "enable", "profiles")
    tutor("config", "save")
    # This process's hooks, as the `tutor` command sets them up (the plugin's init tasks, ...).
    hooks.Actions.CORE_READY.do()
    hooks.Actions.PROJECT_ROOT_READY.do(ROOT)


class PluginTest(unittest.TestCase):
    config: dict

    @classmethod
    def setUpClass(cls) -> None:
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
                "SECRET_KEYS": self.config["PROFILES_SECRET_KEYS"],
                "PUBLIC_URL": "http://profiles.local.openedx.io",
                "LMS_LOGOUT": "true",
                "BIND": "0.0.0.0:8080",
                # PROFILES_DATABASE=mysql, the default: Tutor's MySQL, as the mysql task makes it.
                "DATABASE_URL": "mysql://profiles:"
                + self.config["PROFILES_MYSQL_PASSWORD"]
                + "@mysql:3306/profiles",
            },
        )
        self.assertEqual(set(service["depends_on"]), {"lms", "mysql", "permissions"})
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
        task = init_tasks(config)["lms"]
        self.assertIn(
            '--redirect-uris "https://me.example.org/authorize/ https://me.example.org/signed-out/" ',
            task,
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
        # The dev application, the only one registered with these plain-http addresses.
        self.assertEqual(environment["LMS_CLIENT_ID"], "profiles-dev")
        self.assertEqual(environment["LMS_CLIENT_SECRET"], self.config["PROFILES_OAUTH2_SECRET_DEV"])
        self.assertNotEqual(self.config["PROFILES_OAUTH2_SECRET_DEV"], self.config["PROFILES_OAUTH2_SECRET"])
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
        self.assertIn("mysql-job", out)
        self.assertIn("profiles-job", out)
        self.assertIn("profiles", out)

    def test_the_profiles_job_runs_migrations_with_the_services_environment(self) -> None:
        jobs = compose_files_config(ROOT, "docker-compose.yml", "docker-compose.jobs.yml")
        job = jobs["services"]["profiles-job"]
        self.assertEqual(job["image"], "profiles:0.2.0")
        self.assertEqual(job["environment"], self.local["services"]["profiles"]["environment"])
        self.assertEqual(set(job["depends_on"]), {"mysql"})
        self.assertEqual(init_tasks(self.config)["profiles"].splitlines()[-1], "profiles migrate")

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

    def test_init_registers_two_applications_like_tutor_does_for_studio(self) -> None:
        tasks = init_tasks(self.config)
        # Tutor runs each in its `<service>-job`: Tutor's mysql-job and lms-job, our profiles-job.
        self.assertEqual(list(tasks), ["mysql", "lms", "profiles"])
        script = " ".join(
            line for line in tasks["lms"].replace("\\\n", " ").splitlines() if not line.startswith("#")
        )
        script = " ".join(script.split())
        self.assertIn(
            "./manage.py lms manage_user profiles profiles@openedx --unusable-password", script
        )
        secret = self.config["PROFILES_OAUTH2_SECRET"]
        dev_secret = self.config["PROFILES_OAUTH2_SECRET_DEV"]
        # Production: the public address alone (through Caddy), sign-in and sign-out returns.
        production = (
            "./manage.py lms create_dot_application --grant-type authorization-code "
            '--redirect-uris "http://profiles.local.openedx.io/authorize/ '
            'http://profiles.local.openedx.io/signed-out/" --client-id profiles '
            f"--client-secret {secret} --scopes user_id --skip-authorization --update "
            "profiles-sso profiles"
        )
        # Dev: tutor dev's plain-http port 8080, under its own client id and secret.
        dev = (
            "./manage.py lms create_dot_application --grant-type authorization-code "
            '--redirect-uris "http://profiles.local.openedx.io:8080/authorize/ '
            'http://profiles.local.openedx.io:8080/signed-out/" --client-id profiles-dev '
            f"--client-secret {dev_secret} --scopes user_id --skip-authorization --update "
            "profiles-sso-dev profiles"
        )
        self.assertIn(production, script)
        self.assertIn(dev, script)
        # The production application accepts no plain-http dev address.
        self.assertNotIn(":8080", script[script.index(production) : script.index(production) + len(production)])
        # An earlier release's single application becomes the production one, same client id.
        self.assertIn(".filter(name='profiles', user__username='profiles').update(name='profiles-sso')", script)
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


# The oldest and newest Kubernetes releases whose schemas kubernetes-validate ships that the
# objects are checked against (strict: a field the schema does not know fails too).
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
# The machine's MariaDB (README, "The machine"): root, no password.
MARIADB = {"MYSQL_HOST": "127.0.0.1", "MYSQL_PORT": "3306", "MYSQL_ROOT_USERNAME": "root"}


def secret_values(config: dict) -> dict[str, str]:
    return {
        name: str(config[name])
        for name in (
            "PROFILES_OAUTH2_SECRET", "PROFILES_OAUTH2_SECRET_DEV", "PROFILES_SECRET_KEYS",
            "PROFILES_MYSQL_PASSWORD",
        )
    }


class KubernetesTest(unittest.TestCase):
    """`tutor k8s`: what `tutor config save` renders into env/ for kustomize."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.config = tutor_config.load(ROOT)
        cls.objects = k8s_objects(ROOT)
        cls.deployment = find(cls.objects, "Deployment", "profiles")
        cls.job = find(cls.objects, "Job", "profiles-job")
        cls.secret = find(cls.objects, "Secret", "profiles")
        cls.service = find(cls.objects, "Service", "profiles")

    def validate_all(self, objects: list[tuple[str, dict]]) -> None:
        for version in KUBERNETES_VERSIONS:
            for path, obj in objects:
                with self.subTest(version=version, file=path, kind=obj["kind"], name=obj["metadata"]["name"]):
                    try:
                        kubernetes_validate.validate(obj, version, strict=True)
                    except kubernetes_validate.ValidationError as e:
                        self.fail(f"{path}: {obj['kind']} {obj['metadata']['name']}: {e.message} at {list(e.path)}")

    def test_every_rendered_object_validates_against_the_kubernetes_schemas(self) -> None:
        kinds = {(o["kind"], o["metadata"]["name"]) for _, o in self.objects}
        # Tutor's own objects and ours, all of them: nothing rendered is left unchecked.
        self.assertLessEqual(
            {("Deployment", "profiles"), ("Service", "profiles"), ("Job", "profiles-job"),
             ("Secret", "profiles"), ("Deployment", "lms"), ("Job", "mysql-job"), ("Job", "lms-job")},
            kinds,
        )
        print(f"\nvalidating {len(self.objects)} objects against {KUBERNETES_VERSIONS}", file=sys.stderr)
        self.validate_all(self.objects)

    def test_the_sqlite_https_and_replica_variants_validate_too(self) -> None:
        for name, settings in [
            ("k8s-sqlite", ("PROFILES_DATABASE=sqlite",)),
            ("k8s-https", ("ENABLE_HTTPS=true", "PROFILES_REPLICAS=5", "LMS_HOST=lms.example.org")),
        ]:
            self.validate_all(k8s_objects(new_root(name, *settings)))

    def test_the_deployment_runs_the_replicas_as_a_numeric_non_root_user(self) -> None:
        spec = self.deployment["spec"]
        self.assertEqual(spec["replicas"], 2)
        pod = spec["template"]["spec"]
        self.assertEqual(spec["selector"]["matchLabels"], {"app.kubernetes.io/name": "profiles"})
        self.assertEqual(spec["template"]["metadata"]["labels"], {"app.kubernetes.io/name": "profiles"})
        security = pod["securityContext"]
        self.assertIs(security["runAsNonRoot"], True)
        self.assertEqual((security["runAsUser"], security["runAsGroup"]), (10001, 10001))
        [container] = pod["containers"]
        self.assertEqual(container["name"], "profiles")
        self.assertEqual(container["image"], "profiles:0.2.0")
        self.assertEqual((container["command"], container["args"]), (["profiles"], ["serve"]))
        self.assertEqual(container["securityContext"]["readOnlyRootFilesystem"], True)
        self.assertEqual(container["securityContext"]["allowPrivilegeEscalation"], False)
        # /tmp alone is writable: an emptyDir (MySQL keeps the data).
        self.assertEqual([m["mountPath"] for m in container["volumeMounts"]], ["/tmp"])
        self.assertEqual(pod["volumes"], [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}])
        for kind in ("requests", "limits"):
            self.assertEqual(set(container["resources"][kind]), {"cpu", "memory"}, kind)
        # The app's longest request (4 × LMS_TIMEOUT_SECS + 10 s) and the preStop pause fit.
        self.assertGreaterEqual(pod["terminationGracePeriodSeconds"], 50 + 5)
        self.assertEqual(container["lifecycle"]["preStop"]["exec"]["command"], ["sleep", "5"])

    def test_the_probes_ask_readyz_and_healthz_on_the_apps_port(self) -> None:
        [container] = self.deployment["spec"]["template"]["spec"]["containers"]
        self.assertEqual(container["ports"], [{"name": "http", "containerPort": 8080}])
        self.assertEqual(container["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "http"})
        self.assertEqual(container["livenessProbe"]["httpGet"], {"path": "/healthz", "port": "http"})
        self.assertEqual(container["startupProbe"]["httpGet"], {"path": "/healthz", "port": "http"})
        environment = container_env(container, {"profiles": self.secret})
        self.assertEqual(environment["BIND"], "0.0.0.0:8080")

    def test_the_service_is_where_caddys_route_sends(self) -> None:
        self.assertEqual(self.service["spec"]["selector"], {"app.kubernetes.io/name": "profiles"})
        [port] = self.service["spec"]["ports"]
        self.assertEqual((port["port"], port["targetPort"]), (8080, "http"))
        self.assertIn('import proxy "profiles:8080"', read(ROOT, "apps", "caddy", "Caddyfile"))
        # Caddy's own Deployment in k8s reads that very Caddyfile (the caddy-config ConfigMap).
        self.assertIn(os.path.join(ROOT, "env", "apps", "caddy", "Caddyfile"), configmap_files(ROOT))

    def test_the_secret_holds_the_client_secret_and_the_keys_and_the_pods_read_them_from_it(
        self,
    ) -> None:
        data = secret_data(self.secret)
        config = self.config
        self.assertEqual(data["LMS_CLIENT_SECRET"], config["PROFILES_OAUTH2_SECRET"])
        self.assertEqual(data["SECRET_KEYS"], config["PROFILES_SECRET_KEYS"])
        self.assertEqual(
            data["DATABASE_URL"],
            f"mysql://profiles:{config['PROFILES_MYSQL_PASSWORD']}@mysql:3306/profiles",
        )
        # The app's SECRET_KEYS form: base64 keys of at least 32 bytes, comma-separated.
        for key in data["SECRET_KEYS"].split(","):
            self.assertGreaterEqual(len(base64.b64decode(key, validate=True)), 32)
        for obj in (self.deployment, self.job):
            [container] = obj["spec"]["template"]["spec"]["containers"]
            refs = {
                v["name"]: v["valueFrom"]["secretKeyRef"]
                for v in container["env"]
                if "valueFrom" in v
            }
            self.assertEqual(
                refs,
                {name: {"name": "profiles", "key": name} for name in ("LMS_CLIENT_SECRET", "SECRET_KEYS", "DATABASE_URL")},
            )

    def test_no_secret_is_in_a_configmap_or_a_manifest_other_than_the_secret(self) -> None:
        values = secret_values(self.config)
        for path in configmap_files(ROOT):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            for name, value in values.items():
                self.assertNotIn(value, text, f"{name} in the ConfigMap file {path}")
        for path, obj in self.objects:
            if obj["kind"] == "Secret":
                continue
            text = json.dumps(obj)
            for name, value in values.items():
                self.assertNotIn(value, text, f"{name} in {obj['kind']} {obj['metadata']['name']} ({path})")
        # The Deployment and Job give the pods the production client secret, not the dev one.
        self.assertNotIn(self.config["PROFILES_OAUTH2_SECRET_DEV"], json.dumps(self.secret))

    def test_the_secret_is_generated_once_and_stays_across_config_saves(self) -> None:
        root = new_root("k8s-stable")
        before = (secret_values(tutor_config.load(root)), read(root, "plugins", "profiles", "k8s", "secret.yml"))
        tutor("config", "save", root=root)
        tutor("config", "save", root=root)
        after = (secret_values(tutor_config.load(root)), read(root, "plugins", "profiles", "k8s", "secret.yml"))
        self.assertEqual(before, after)
        # Another platform gets secrets of its own.
        self.assertNotEqual(before[0]["PROFILES_SECRET_KEYS"], self.config["PROFILES_SECRET_KEYS"])

    def test_a_changed_secret_rolls_the_pods(self) -> None:
        root = new_root("k8s-rotation")
        def digest() -> str:
            deployment = find(k8s_objects(root), "Deployment", "profiles")
            return deployment["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
        before = digest()
        keys = tutor("config", "printvalue", "PROFILES_SECRET_KEYS", root=root).strip()
        new_key = base64.b64encode(os.urandom(32)).decode()
        tutor("config", "save", "--set", f"PROFILES_SECRET_KEYS={new_key},{keys}", root=root)
        self.assertNotEqual(digest(), before)
        self.assertEqual(
            secret_data(find(k8s_objects(root), "Secret", "profiles"))["SECRET_KEYS"], f"{new_key},{keys}"
        )

    def test_the_init_job_is_tutors_profiles_job_with_the_deployments_environment(self) -> None:
        self.assertEqual(self.job["metadata"]["labels"], {"app.kubernetes.io/component": "job"})
        pod = self.job["spec"]["template"]["spec"]
        self.assertEqual(pod["restartPolicy"], "Never")
        self.assertIs(pod["securityContext"]["runAsNonRoot"], True)
        [container] = pod["containers"]
        [app] = self.deployment["spec"]["template"]["spec"]["containers"]
        # No command: Tutor's K8sTaskRunner gives it `sh -e -c TASK` as its arguments, which the
        # image (no entrypoint) runs as the command.
        self.assertNotIn("command", container)
        self.assertNotIn("args", container)
        self.assertEqual(container["image"], app["image"])
        self.assertEqual(container["env"], app["env"])
        for kind in ("requests", "limits"):
            self.assertIn(kind, container["resources"])

    def test_replicas_and_sqlite(self) -> None:
        five = find(k8s_objects(new_root("k8s-five", "PROFILES_REPLICAS=5")), "Deployment", "profiles")
        self.assertEqual(five["spec"]["replicas"], 5)
        objects = k8s_objects(new_root("k8s-sqlite-check", "PROFILES_DATABASE=sqlite", "PROFILES_REPLICAS=5"))
        deployment = find(objects, "Deployment", "profiles")
        # One file, one pod: replicas cannot share SQLite.
        self.assertEqual(deployment["spec"]["replicas"], 1)
        self.assertEqual(deployment["spec"]["strategy"], {"type": "Recreate"})
        find(objects, "PersistentVolumeClaim", "profiles")
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        self.assertEqual([m["mountPath"] for m in container["volumeMounts"]], ["/tmp", "/data"])
        secret = find(objects, "Secret", "profiles")
        self.assertEqual(
            container_env(container, {"profiles": secret})["DATABASE_URL"], "sqlite:///data/profiles.db"
        )
        self.assertNotIn("DATABASE_URL", secret_data(secret))

    def test_kustomize_builds_the_whole_and_no_configmap_holds_a_secret(self) -> None:
        # `kubectl kustomize` is what `tutor k8s start` runs; where it is installed, its output
        # (names suffixed, labels and namespace added) is checked too.
        try:
            out = subprocess.run(
                ["kubectl", "kustomize", os.path.join(ROOT, "env")],
                check=True, capture_output=True, text=True,
            ).stdout
        except FileNotFoundError:
            self.skipTest("kubectl is not installed: the kustomized whole is not checked")
        objects = [("kubectl kustomize", o) for o in yaml.safe_load_all(out) if o]
        self.validate_all(objects)
        values = secret_values(self.config)
        for _, obj in objects:
            if obj["kind"] == "ConfigMap":
                text = json.dumps(obj)
                for name, value in values.items():
                    self.assertNotIn(value, text, f"{name} in ConfigMap {obj['metadata']['name']}")
        self.assertEqual(find(objects, "Deployment", "profiles")["metadata"]["namespace"], "openedx")


class MysqlTaskTest(unittest.TestCase):
    """The `mysql` init task, rendered for the machine's MariaDB, run as Tutor's mysql-job runs
    it (`sh -e -c TASK`)."""

    database = "profiles_plugin_test"

    def mariadb(self, *args: str, user: str = "root", password: str = "") -> subprocess.CompletedProcess:
        return subprocess.run(
            ["mariadb", "--host=127.0.0.1", "--port=3306", f"--user={user}", f"--password={password}", *args],
            capture_output=True, text=True,
        )

    def tearDown(self) -> None:
        self.mariadb("-e", f"DROP DATABASE IF EXISTS `{self.database}`; DROP USER IF EXISTS '{self.database}'@'%';")

    def test_the_mysql_task_creates_the_database_and_user_and_runs_twice(self) -> None:
        self.tearDown()
        root = new_root(
            "mariadb",
            *[f"{k}={v}" for k, v in MARIADB.items()],
            "MYSQL_ROOT_PASSWORD=",
            f"PROFILES_MYSQL_DATABASE={self.database}",
            f"PROFILES_MYSQL_USERNAME={self.database}",
        )
        config = tutor_config.load(root)
        task = init_tasks(config)["mysql"]
        print(f"\nthe mysql task:\n{task.replace(config['PROFILES_MYSQL_PASSWORD'], '***')}", file=sys.stderr)
        for attempt in ("first", "second"):
            run = subprocess.run(["sh", "-e", "-c", task], capture_output=True, text=True)
            self.assertEqual(run.returncode, 0, f"{attempt} run: {run.stderr}")
        password = config["PROFILES_MYSQL_PASSWORD"]
        # The Secret's DATABASE_URL names this very user, password and database.
        secret = secret_data(find(k8s_objects(root), "Secret", "profiles"))
        self.assertEqual(
            secret["DATABASE_URL"], f"mysql://{self.database}:{password}@127.0.0.1:3306/{self.database}"
        )
        use = self.mariadb(
            self.database, "-e", "CREATE TABLE t (x INT); INSERT INTO t VALUES (1); SELECT x FROM t; DROP TABLE t;",
            user=self.database, password=password,
        )
        self.assertEqual(use.returncode, 0, use.stderr)
        self.assertEqual(use.stdout.split(), ["x", "1"])
        # Its grants are this database's alone.
        other = self.mariadb("mysql", "-e", "SELECT 1", user=self.database, password=password)
        self.assertNotEqual(other.returncode, 0)
        # A changed password takes at the next run (ALTER USER), the old one no longer does.
        tutor("config", "save", "--set", "PROFILES_MYSQL_PASSWORD=changed0password", root=root)
        task = init_tasks(tutor_config.load(root))["mysql"]
        self.assertEqual(subprocess.run(["sh", "-e", "-c", task], capture_output=True).returncode, 0)
        self.assertEqual(self.mariadb(self.database, "-e", "SELECT 1", user=self.database, password="changed0password").returncode, 0)
        self.assertNotEqual(self.mariadb(self.database, "-e", "SELECT 1", user=self.database, password=password).returncode, 0)

    def test_with_sqlite_the_mysql_task_makes_nothing(self) -> None:
        task = init_tasks(tutor_config.load(new_root("sqlite-task", "PROFILES_DATABASE=sqlite")))
        self.assertNotIn("mysql ", task["mysql"])
        self.assertNotIn("profiles migrate", task["profiles"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
