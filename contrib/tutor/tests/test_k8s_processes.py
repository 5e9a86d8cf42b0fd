"""
The Deployment as processes: what `tutor k8s` would run, run here without a cluster.

It renders the plugin with Tutor for k8s and reads what the cluster would be given: the
Deployment `profiles`, the Job `profiles-job`, the Secret `profiles` (command, args, environment
with every `secretKeyRef` resolved from the Secret, ports, probe paths). Then, as `tutor k8s do
init` and the Deployment would:

1. the init tasks, twice (they must be idempotent), each as Tutor's K8sTaskRunner runs it in
   `<service>-job` (`sh -e -c TASK`): the `mysql` task with the machine's `mariadb` client (Tutor
   runs it in its mysql-job), the `profiles` task (`profiles migrate`) with the built binary and
   exactly profiles-job's environment. The `lms` task needs a real LMS; in its place the LMS
   stand-in (`openedx-standin`) is started with the client id, secret and redirect URIs that the
   rendered task registers for the production application (`profiles-sso`);
2. two replicas of `profiles serve` with exactly the Deployment's environment, behind a
   round-robin proxy (as the Service balances between pods);
3. the readiness and liveness probes, as declared, answer on each replica;
4. a person signs in (the sign-in starts on one replica and its callback lands on the other),
   the profile page answers on both, and signing out ends the session on both;
5. SIGTERM stops each replica within terminationGracePeriodSeconds.

Nothing runs in a container, so host names are mapped to loopback and each replica gets its own
port: in every URL the rendered environment holds, `lms` and the LMS's host become the
stand-in's address, `mysql` becomes 127.0.0.1:3306 (the machine's MariaDB), the app's host
becomes the proxy's address, and BIND's 0.0.0.0:8080 becomes 127.0.0.1:<port of the replica>.
Every other variable is passed exactly as rendered, and nothing else (but PATH, and the image's
ENV from the Dockerfile); each process runs in an empty folder (the image's /data holds no
`.env`). The test prints each rewrite.

Run, from the repository (`profiles` must have the `migrate` command and the MySQL backend):

    cargo build --locked --release --no-default-features      # profiles, as the image builds it
    cargo build --locked --release -p openedx-standin --bin openedx-standin
    PROFILES_K8S_PROCESS_TEST_BIN=$PWD/target/release contrib/tutor/tests/run.sh

PROFILES_K8S_PROCESS_TEST_BIN is the folder holding `profiles` and `openedx-standin` (or the
`profiles` binary itself, with `openedx-standin` beside it). Without it, every test is skipped.
MariaDB must answer on 127.0.0.1:3306 as root without a password; the test makes and drops the
database and user `profiles_k8s_test`.

PROFILES_K8S_PROCESS_TEST_DATABASE=sqlite (to debug this harness only, NOT what CI runs)
replaces the Secret's DATABASE_URL with a SQLite file shared by both replicas; the `mysql` task
still runs.
"""

from __future__ import annotations

import asyncio
import http.client
import http.cookies
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

from tutor import config as tutor_config
from tutor import env, hooks

from rendered import container_env, find, k8s_objects

ROOT = os.environ.get("TUTOR_ROOT", "")
TUTOR = os.path.join(os.path.dirname(sys.executable), "tutor")
BIN = os.environ.get("PROFILES_K8S_PROCESS_TEST_BIN", "")
DEBUG_DATABASE = os.environ.get("PROFILES_K8S_PROCESS_TEST_DATABASE", "mysql")
NAME = "profiles_k8s_test"
MARIADB = ("127.0.0.1", 3306)
# The demo learner the stand-in knows (crates/openedx-standin).
LEARNER = ("learner", "learner-password", "Ada Lovelace")


def binaries() -> tuple[str, str]:
    folder = BIN if os.path.isdir(BIN) else os.path.dirname(BIN)
    profiles = BIN if os.path.isfile(BIN) else os.path.join(folder, "profiles")
    standin = os.environ.get(
        "PROFILES_K8S_PROCESS_TEST_STANDIN", os.path.join(folder, "openedx-standin")
    )
    return profiles, standin


def tutor(*args: str) -> str:
    result = subprocess.run(
        [TUTOR, *args], capture_output=True, text=True, env={**os.environ, "TUTOR_ROOT": ROOT}
    )
    if result.returncode != 0:
        raise AssertionError(f"`tutor {shlex.join(args)}` exited {result.returncode}:\n{result.stderr}")
    return result.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mariadb(*args: str, user: str = "root", password: str = "") -> subprocess.CompletedProcess:
    host, port = MARIADB
    return subprocess.run(
        ["mariadb", f"--host={host}", f"--port={port}", f"--user={user}", f"--password={password}", *args],
        capture_output=True, text=True,
    )


def drop_database_and_user() -> None:
    mariadb("-e", f"DROP DATABASE IF EXISTS `{NAME}`; DROP USER IF EXISTS '{NAME}'@'%';")


def image_env() -> dict[str, str]:
    """The image's ENV, from the Dockerfile the plugin builds (the container starts with it)."""
    with open(os.path.join(ROOT, "env", "plugins", "profiles", "build", "profiles", "Dockerfile"), encoding="utf-8") as f:
        joined = re.sub(r"\\\n", " ", f.read())
    [line] = [line for line in joined.splitlines() if line.startswith("ENV ")]
    return dict(pair.split("=", 1) for pair in shlex.split(line[len("ENV "):]))


# --- the round-robin proxy ------------------------------------------------------------------------
class RoundRobin:
    """A TCP proxy that sends each new connection to the next backend, as a Service spreads
    connections over its pods. The client here opens one connection per request, so requests
    alternate; `served` records which backend took each connection."""

    def __init__(self, backends: list[tuple[str, int]]):
        self.backends = backends
        self.served: list[int] = []
        self.loop = asyncio.new_event_loop()
        self.port = free_port()
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.started.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", self.port)
        )
        self.started.set()
        self.loop.run_forever()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.served) % len(self.backends)
        self.served.append(index)
        host, port = self.backends[index]
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    def close(self) -> None:
        def stop() -> None:
            self.server.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(stop)
        self.thread.join(5)
        self.loop.close()


# --- a browser, as far as signing in needs one ------------------------------------------------------
class Browser:
    """One connection per request, no redirects followed, and cookies kept by name and sent to
    every 127.0.0.1 port (as curl's cookie jar does: cookies do not depend on the port)."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    def request(self, method: str, url: str, form: dict[str, str] | str | None = None) -> tuple[int, str, str]:
        parts = urllib.parse.urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        headers = {"Connection": "close"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = form if isinstance(form, str) else urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, path or "/", body=body, headers=headers)
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie = http.cookies.SimpleCookie()
            cookie.load(header)
            for name, morsel in cookie.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        location = response.headers.get("Location", "")
        connection.close()
        return response.status, urllib.parse.urljoin(url, location) if location else "", text


def wait_for(url: str, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    status = 0
    while time.monotonic() < deadline:
        try:
            status, _, _ = Browser().request("GET", url)
            if status == 200:
                return status
        except OSError:
            pass
        time.sleep(0.2)
    return status


def setUpModule() -> None:
    if not BIN:
        raise unittest.SkipTest(
            "PROFILES_K8S_PROCESS_TEST_BIN is not set: set it to the folder holding the built "
            "`profiles` and `openedx-standin` (e.g. target/release) to run the Deployment as processes"
        )
    if not ROOT:
        raise unittest.SkipTest("TUTOR_ROOT is not set: run through contrib/tutor/tests/run.sh")
    profiles, standin = binaries()
    for path in (profiles, standin):
        if not os.access(path, os.X_OK):
            raise AssertionError(f"PROFILES_K8S_PROCESS_TEST_BIN: no executable {path}")
    if mariadb("-e", "SELECT 1").returncode != 0:
        raise AssertionError("MariaDB does not answer on 127.0.0.1:3306 as root without a password")


class DeploymentAsProcessesTest(unittest.TestCase):
    processes: list[subprocess.Popen]

    @classmethod
    def setUpClass(cls) -> None:
        # Tutor's defaults (MYSQL_HOST=mysql, the app's host, lms:8000) except the MySQL root
        # password, which the machine's MariaDB does not have, and the test's own database name.
        tutor("plugins", "enable", "profiles")
        tutor(
            "config", "save", "--set", "MYSQL_ROOT_PASSWORD=", "--set", f"PROFILES_MYSQL_DATABASE={NAME}",
            "--set", f"PROFILES_MYSQL_USERNAME={NAME}",
        )
        hooks.Actions.CORE_READY.do()
        hooks.Actions.PROJECT_ROOT_READY.do(ROOT)
        cls.config = tutor_config.load(ROOT)
        objects = k8s_objects(ROOT)
        cls.deployment = find(objects, "Deployment", "profiles")
        cls.job = find(objects, "Job", "profiles-job")
        cls.secret = find(objects, "Secret", "profiles")
        cls.tasks = [
            (service, env.render_str(cls.config, task))
            for service, task in hooks.Filters.CLI_DO_INIT_TASKS.iterate_from_context(
                hooks.Contexts.app("profiles").name
            )
        ]
        cls.work = tempfile.mkdtemp(prefix="profiles-k8s-")
        cls.processes = []
        cls.lms_port = free_port()
        cls.replica_ports = [free_port(), free_port()]
        cls.proxy = RoundRobin([("127.0.0.1", port) for port in cls.replica_ports])
        cls.public = f"http://127.0.0.1:{cls.proxy.port}"
        cls.lms = f"http://127.0.0.1:{cls.lms_port}"
        drop_database_and_user()

    @classmethod
    def tearDownClass(cls) -> None:
        for process in cls.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        cls.proxy.close()
        drop_database_and_user()
        shutil.rmtree(cls.work, ignore_errors=True)

    # --- loopback --------------------------------------------------------------------------------
    def hosts(self) -> dict[str, str]:
        """Rendered `host[:port]` -> where it is here."""
        config = self.config
        return {
            "lms:8000": f"127.0.0.1:{self.lms_port}",
            config["LMS_HOST"]: f"127.0.0.1:{self.lms_port}",
            f"{config['MYSQL_HOST']}:{config['MYSQL_PORT']}": "%s:%d" % MARIADB,
            config["PROFILES_HOST"]: f"127.0.0.1:{self.proxy.port}",
        }

    def loopback(self, value: str) -> str:
        def swap(match: re.Match) -> str:
            scheme, userinfo, hostport = match.group(1), match.group(2) or "", match.group(3)
            return f"{scheme}://{userinfo}{self.hosts().get(hostport, hostport)}"

        return re.sub(r"([a-z]+)://([^@/\s\"]*@)?([^/\s\"?#]+)", swap, value)

    def environment(self, container: dict, bind: str | None = None) -> dict[str, str]:
        rendered = container_env(container, {"profiles": self.secret})
        if DEBUG_DATABASE == "sqlite":
            rendered["DATABASE_URL"] = f"sqlite://{self.work}/debug-not-ci.db"
        here = {name: self.loopback(value) for name, value in rendered.items()}
        if bind is not None:
            self.assertEqual(here["BIND"], "0.0.0.0:8080")
            here["BIND"] = bind
        for name in sorted(here):
            if here[name] != rendered[name]:
                shown = [v.replace(self.config["PROFILES_MYSQL_PASSWORD"], "***") for v in (rendered[name], here[name])]
                print(f"  {name}: {shown[0]} -> {shown[1]}", file=sys.stderr)
        profiles, _ = binaries()
        return {
            **image_env(),
            **here,
            "PATH": os.path.dirname(profiles) + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
        }

    def folder(self, name: str) -> str:
        path = os.path.join(self.work, name)
        os.makedirs(path, exist_ok=True)
        return path

    # --- the steps -------------------------------------------------------------------------------
    def run_job(self, service: str, task: str, attempt: int) -> None:
        """As K8sTaskRunner: `<service>-job`'s container, its args `sh -e -c TASK`."""
        if service == "mysql":
            # Tutor's mysql-job: the mysql client, towards MYSQL_HOST, here the machine's MariaDB.
            host, port = MARIADB
            script = task.replace(f'--host "{self.config["MYSQL_HOST"]}"', f'--host "{host}"')
            script = script.replace(f"--port {self.config['MYSQL_PORT']}", f"--port {port}")
            environment = dict(os.environ)
        else:
            container = self.job["spec"]["template"]["spec"]["containers"][0]
            # No command: the args Tutor sets, `sh -e -c TASK`, are the command (the image has
            # no entrypoint).
            self.assertNotIn("command", container)
            print(f"profiles-job ({attempt}):", file=sys.stderr)
            environment = self.environment(container)
            script = task
        run = subprocess.run(
            ["sh", "-e", "-c", script], env=environment, cwd=self.folder(f"{service}-job"),
            capture_output=True, text=True, timeout=120,
        )
        self.assertEqual(
            run.returncode, 0, f"{service}-job, run {attempt}, exited {run.returncode}:\n{run.stdout}\n{run.stderr}"
        )

    def registration(self) -> dict:
        """What the rendered `lms` task registers for the production application."""
        [lms] = [task for service, task in self.tasks if service == "lms"]
        for command in re.sub(r"\\\n", " ", lms).splitlines():
            words = shlex.split(command, comments=True)
            if "create_dot_application" in words and "profiles-sso" in words:
                options = {}
                for i, word in enumerate(words):
                    if word.startswith("--") and i + 1 < len(words) and not words[i + 1].startswith("--"):
                        options[word] = words[i + 1]
                options["--skip-authorization"] = "--skip-authorization" in words
                return options
        raise AssertionError("the lms task registers no profiles-sso application")

    def start_standin(self) -> None:
        registered = self.registration()
        _, standin = binaries()
        args = [standin, "--bind", f"127.0.0.1:{self.lms_port}", "--client-id", registered["--client-id"]]
        for uri in registered["--redirect-uris"].split():
            args += ["--redirect-uri", self.loopback(uri)]
        if registered["--skip-authorization"]:
            args.append("--skip-authorization")
        args += ["--logout-uri", f"{self.public}/frontchannel-logout/"]
        print(f"the stand-in in place of the lms task: {shlex.join(args)}", file=sys.stderr)
        process = subprocess.Popen(
            args, env={**os.environ, "OPENEDX_STANDIN_CLIENT_SECRET": registered["--client-secret"]},
            cwd=self.folder("lms"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)
        self.assertEqual(wait_for(f"{self.lms}/heartbeat", 20), 200, "the stand-in did not start")

    def start_replicas(self) -> list[subprocess.Popen]:
        [container] = self.deployment["spec"]["template"]["spec"]["containers"]
        command = container["command"] + container.get("args", [])
        profiles, _ = binaries()
        self.assertEqual(command[0], "profiles")
        replicas = []
        for i, port in enumerate(self.replica_ports):
            print(f"replica {i}: {shlex.join(command)}", file=sys.stderr)
            environment = self.environment(container, bind=f"127.0.0.1:{port}")
            with open(os.path.join(self.folder(f"replica-{i}"), "log"), "w", encoding="utf-8") as log:
                process = subprocess.Popen(
                    [profiles, *command[1:]], env=environment, cwd=self.folder(f"replica-{i}"),
                    stdout=log, stderr=subprocess.STDOUT,
                )
            self.processes.append(process)
            replicas.append(process)
        return replicas

    def replica_log(self, i: int) -> str:
        with open(os.path.join(self.work, f"replica-{i}", "log"), encoding="utf-8") as f:
            return f.read()[-3000:]

    def probe(self, probe: dict, port: int, budget: float) -> int:
        get = probe["httpGet"]
        self.assertEqual(get["port"], "http")
        return wait_for(f"http://127.0.0.1:{port}{get['path']}", budget)

    def sign_in(self, browser: Browser) -> None:
        status, location, _ = browser.request("GET", f"{self.public}/")
        self.assertEqual((status, location.split("?")[0]), (303, f"{self.lms}/oauth2/authorize/"))
        authorize = location
        status, location, _ = browser.request("GET", authorize)
        self.assertEqual(status, 302)
        self.assertTrue(location.startswith(f"{self.lms}/login?next="), location)
        user, password, _ = LEARNER
        form = f"username={user}&password={password}&{location.split('?', 1)[1]}"
        status, location, _ = browser.request("POST", f"{self.lms}/login", form)
        self.assertEqual(status, 302)
        status, location, page = browser.request("GET", location)
        if status == 200:  # the consent page (an application registered without skip)
            self.assertIn('name="allow"', page)
            status, location, _ = browser.request("POST", authorize, {"allow": "Authorize"})
        self.assertEqual(status, 302)
        self.assertTrue(location.startswith(f"{self.public}/authorize/?code="), location)
        status, location, _ = browser.request("GET", location)
        self.assertEqual((status, location), (303, f"{self.public}/profile/"))
        self.assertIn("profiles_session", browser.cookies)

    def test_the_rendered_deployment_and_job_run_as_processes_on_mariadb(self) -> None:
        # 1. `tutor k8s do init`, twice.
        self.assertEqual([service for service, _ in self.tasks], ["mysql", "lms", "profiles"])
        self.start_standin()
        for attempt in (1, 2):
            for service, task in self.tasks:
                if service != "lms":
                    self.run_job(service, task, attempt)
        # The mysql task's user reaches its database with the Secret's password.
        self.assertEqual(
            mariadb(NAME, "-e", "SELECT 1", user=NAME, password=self.config["PROFILES_MYSQL_PASSWORD"]).returncode, 0
        )

        # 2. Two replicas, and 3. their probes as declared.
        replicas = self.start_replicas()
        [container] = self.deployment["spec"]["template"]["spec"]["containers"]
        startup = container["startupProbe"]
        budget = startup["periodSeconds"] * startup["failureThreshold"]
        for i, port in enumerate(self.replica_ports):
            self.assertEqual(self.probe(container["livenessProbe"], port, budget), 200, self.replica_log(i))
            self.assertEqual(self.probe(container["readinessProbe"], port, 10), 200, self.replica_log(i))

        # 4. A sign-in across both replicas, and a sign-out from both.
        browser = Browser()
        before = len(self.proxy.served)
        self.sign_in(browser)
        # `/` and the callback were two connections in a row: two replicas.
        self.assertEqual(sorted(self.proxy.served[before:]), [0, 1])
        pages = []
        for _ in self.replica_ports:
            status, _, page = browser.request("GET", f"{self.public}/profile/")
            self.assertEqual(status, 200)
            self.assertIn(LEARNER[2], page)
            pages.append(page)
        self.assertEqual(sorted(self.proxy.served[-2:]), [0, 1], "the profile page from each replica")
        csrf = re.search(r'name="csrf" value="([^"]+)"', pages[-1])
        assert csrf is not None
        # The session cookie as it was: replayed after the sign-out, it must open nothing on
        # either replica (the session ended in the database, not only in this browser).
        replay = Browser()
        replay.cookies = dict(browser.cookies)
        status, location, _ = browser.request("POST", f"{self.public}/logout", {"csrf": csrf.group(1)})
        self.assertEqual(status, 303)
        self.assertTrue(location.startswith(f"{self.lms}/logout"), location)
        for i, port in enumerate(self.replica_ports):
            for who, client in (("the browser", browser), ("the old cookie", replay)):
                status, location, _ = client.request("GET", f"http://127.0.0.1:{port}/profile/")
                self.assertEqual(
                    (status, urllib.parse.urlsplit(location).path), (303, "/"),
                    f"replica {i}, {who}, after sign-out",
                )

        # 5. SIGTERM: each replica stops within the grace period the Deployment gives it.
        grace = self.deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        for i, process in enumerate(replicas):
            process.send_signal(signal.SIGTERM)
            self.assertEqual(process.wait(timeout=grace), 0, self.replica_log(i))


if __name__ == "__main__":
    unittest.main(verbosity=2)
