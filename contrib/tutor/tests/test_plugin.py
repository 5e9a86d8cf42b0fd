"""
Renders the plugin with a real Tutor in a temporary TUTOR_ROOT and checks what it produces.
Run by tests/run.sh, which installs tutor and the plugin into a throwaway virtualenv.
"""

import os
import re
import subprocess
import sys
import unittest

import yaml
from tutor import config as tutor_config
from tutor import env, hooks

ROOT = os.environ["TUTOR_ROOT"]


def tutor(*args: str) -> str:
    return subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "tutor"), *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "TUTOR_ROOT": ROOT},
    ).stdout


class PluginTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        tutor("plugins", "enable", "profiles")
        tutor("config", "save")
        hooks.Actions.CORE_READY.do()
        hooks.Actions.PROJECT_ROOT_READY.do(ROOT)
        cls.config = tutor_config.load(ROOT)

    def test_the_client_secret_is_generated_once_and_kept(self) -> None:
        secret = self.config["PROFILES_OAUTH2_SECRET"]
        self.assertRegex(secret, r"^\S{32}$")
        tutor("config", "save")
        again = tutor("config", "printvalue", "PROFILES_OAUTH2_SECRET").strip()
        self.assertEqual(again, secret)

    def test_the_compose_service_joins_tutor_and_calls_the_lms_internally(self) -> None:
        path = os.path.join(ROOT, "env", "local", "docker-compose.yml")
        with open(path, encoding="utf-8") as f:
            compose = yaml.safe_load(f)
        service = compose["services"]["profiles"]
        environment = service["environment"]
        self.assertEqual(environment["LMS_INTERNAL_URL"], "http://lms:8000")
        self.assertEqual(environment["LMS_URL"], "http://local.openedx.io")
        self.assertEqual(environment["LMS_CLIENT_ID"], "profiles")
        self.assertEqual(environment["LMS_CLIENT_SECRET"], self.config["PROFILES_OAUTH2_SECRET"])
        self.assertEqual(environment["PUBLIC_URL"], "http://profiles.local.openedx.io:8080")
        self.assertEqual(service["ports"], ["8080:8080"])
        self.assertIn("lms", service["depends_on"])
        self.assertIn("../../data/profiles:/data", service["volumes"])
        permissions = compose["services"]["permissions"]
        self.assertIn("../../data/profiles:/mounts/profiles", permissions["volumes"])

    def test_the_data_folder_is_made_the_app_users_own(self) -> None:
        path = os.path.join(ROOT, "env", "apps", "permissions", "setowners.sh")
        with open(path, encoding="utf-8") as f:
            self.assertIn("setowner 10001 /mounts/profiles", f.read())

    def test_tutor_dev_points_browsers_at_port_8000(self) -> None:
        path = os.path.join(ROOT, "env", "dev", "docker-compose.yml")
        with open(path, encoding="utf-8") as f:
            compose = yaml.safe_load(f)
        environment = compose["services"]["profiles"]["environment"]
        self.assertEqual(environment["LMS_URL"], "http://local.openedx.io:8000")

    def test_the_lms_logout_page_loads_the_front_channel_sign_out_beside_studios(self) -> None:
        for mode, studio in [
            ("production", "http://studio.local.openedx.io/logout/"),
            ("development", "http://studio.local.openedx.io:8001/logout/"),
        ]:
            path = os.path.join(ROOT, "env", "apps", "openedx", "settings", "lms", f"{mode}.py")
            with open(path, encoding="utf-8") as f:
                settings = f.read()
            lines = [line for line in settings.splitlines() if "IDA_LOGOUT_URI_LIST" in line]
            print(f"\n{mode}.py:\n" + "\n".join(lines), file=sys.stderr)
            # The rendered lines, run on the list the LMS's own settings start from.
            namespace = {"IDA_LOGOUT_URI_LIST": []}
            exec("\n".join(line.strip() for line in lines), namespace)
            self.assertEqual(
                namespace["IDA_LOGOUT_URI_LIST"],
                ["http://profiles.local.openedx.io:8080/frontchannel-logout/", studio],
                mode,
            )

    def test_init_registers_the_application_like_tutor_does_for_studio(self) -> None:
        tasks = [
            (service, env.render_str(self.config, task))
            for service, task in hooks.Filters.CLI_DO_INIT_TASKS.iterate_from_context(
                hooks.Contexts.app("profiles").name
            )
        ]
        self.assertEqual([service for service, _ in tasks], ["lms"])
        script = " ".join(tasks[0][1].replace("\\\n", " ").split())
        self.assertIn(
            "./manage.py lms manage_user profiles profiles@openedx --unusable-password", script
        )
        secret = self.config["PROFILES_OAUTH2_SECRET"]
        expected = (
            "./manage.py lms create_dot_application --grant-type authorization-code "
            '--redirect-uris "http://profiles.local.openedx.io:8080/authorize/ '
            'http://profiles.local.openedx.io:8080/signed-out/" --client-id profiles '
            f"--client-secret {secret} --scopes user_id --skip-authorization --update "
            "profiles profiles"
        )
        self.assertIn(expected, script)
        self.assertIsNone(re.search(r"{{|}}", script), "fully rendered")


if __name__ == "__main__":
    unittest.main(verbosity=2)
