#!/usr/bin/env bash
# The image, the compose file and the Tutor plugin, built and run for real, as an operator would:
#
#   1. builds the image from the Dockerfile (cold, with --no-cache, then warm after one source file
#      changed) and reports its size and both build times;
#   2. runs it beside the LMS stand-in (the openedx-standin binary, in a container), configured
#      only through environment variables as the README documents, and signs a person in over
#      HTTP through it: non-root, HEALTHCHECK healthy, signed in across `docker restart`,
#      stopped gracefully by `docker stop`, no stand-in and no private key in the image;
#   3. validates every compose profile with the example env files, checks that a missing env file
#      stops `up` with the README's instruction, and brings the `tutor` profile up on a network
#      named as Tutor names it with the stand-in as `lms` on it, then signs in through it;
#   4. deploys the Tutor plugin's `profiles` service with `tutor dev` (tutor from PyPI), the
#      stand-in as `lms` beside it, and signs in through it. (`tutor local` serves it through
#      Caddy, whose image cannot be pulled here: contrib/tutor/tests/run.sh checks that route.)
#
# Needs a Docker daemon with the images the Dockerfile starts from, `docker compose`, curl,
# python3 (with venv; pip reaches PyPI) and cargo (the stand-in binary is built on the host), and
# ports 8000 and 8080 free (the compose file and `tutor dev` publish there). `.ci/run` runs it
# after ../shared/docker-here.sh. Prints PASS/FAIL per check and "N passed, M failed"; exits
# non-zero on any failure. Removes every container, network, volume and image it creates.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
started=$SECONDS

run=profiles-ct-$$                   # the prefix of everything this run creates
image=profiles:container-test-$$
work=$(mktemp -d)
passed=0
failed=0

pass() { passed=$((passed + 1)); echo "PASS  $*"; }
fail() { failed=$((failed + 1)); echo "FAIL  $*"; }
note() { echo "      $*"; }
# A check that cannot go on: counted, then the summary, then exit.
fatal() { fail "$*"; exit 1; }

cleanup() {
    local status=$?
    set +e
    docker ps -aq --filter "name=^$run-" | xargs -r docker rm -f -v >/dev/null 2>&1
    for project in tutor missing; do
        [ -f "$work/$project/docker-compose.yml" ] && docker compose --project-directory "$work/$project" \
            -f "$work/$project/docker-compose.yml" -p "$run-$project" --profile tutor down -v >/dev/null 2>&1
    done
    docker network ls -q --filter "name=^$run-" | xargs -r docker network rm >/dev/null 2>&1
    [ -n "${own_tutor_network:-}" ] && docker network rm tutor_local_default >/dev/null 2>&1
    if [ -n "${own_tutor_dev:-}" ]; then
        "$work/venv/bin/tutor" dev dc down -v >/dev/null 2>&1
        # The app's user owns its data folder; a container removes it as it made it.
        docker run --rm -v "$TUTOR_ROOT/data:/data" debian:bookworm-slim rm -rf /data/profiles >/dev/null 2>&1
    fi
    docker volume ls -q --filter "name=^$run-" | xargs -r docker volume rm >/dev/null 2>&1
    # Anything still running the image (tutor dev's container, should its `down` have failed) first.
    docker ps -aq --filter "ancestor=$image" | xargs -r docker rm -f -v >/dev/null 2>&1
    for tag in "$image" "$image-warm"; do
        docker image inspect "$tag" >/dev/null 2>&1 && { docker rmi "$tag" >/dev/null || echo "could not remove $tag"; }
    done
    rm -rf "$work"
    echo
    echo "container test: $((SECONDS - started)) s"
    echo "$passed passed, $failed failed"
    if [ "$failed" -gt 0 ] && [ "$status" -eq 0 ]; then status=1; fi
    exit "$status"
}
trap cleanup EXIT

# --- what the test needs -------------------------------------------------------------------------
docker info >/dev/null 2>&1 \
    || fatal "no Docker daemon answers: run \`bash ../shared/docker-here.sh\` as root (CI's machines) or start Docker"
docker compose version >/dev/null 2>&1 || fatal "\`docker compose\` (the compose v2 plugin) is missing"
for tool in curl python3 cargo; do
    command -v "$tool" >/dev/null || fatal "$tool is missing"
done
if docker network inspect tutor_local_default >/dev/null 2>&1; then
    fatal "a network tutor_local_default exists (a Tutor platform?): the compose test creates its own; remove it first"
fi
if docker network inspect tutor_dev_default >/dev/null 2>&1; then
    fatal "a network tutor_dev_default exists (a tutor dev platform?): the plugin's test creates its own; stop it first"
fi
for port in 8000 8080; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        fatal "something listens on port $port, where the compose file or tutor dev publishes: stop it first"
    fi
done

# pem_private_keys IMAGE_TAR BASE_TAR: the files of an exported image that hold a PEM private key
# with its body and are not the base image's own, unchanged (Debian's libgnutls carries its FIPS
# self-test keys; libraries and our binary also hold bare labels, which parse PEM, not keys).
pem_private_keys() {
    python3 - "$1" "$2" <<'PY'
import hashlib, re, sys, tarfile
block = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]{64}")
def with_keys(path):
    with tarfile.open(path) as tar:
        for member in tar:
            if member.isfile():
                data = tar.extractfile(member).read()
                if block.search(data):
                    yield member.name.removeprefix("./"), hashlib.sha256(data).hexdigest()
base = dict(with_keys(sys.argv[2]))
for name, digest in with_keys(sys.argv[1]):
    print(f"{name} (the base image's own)" if base.get(name) == digest else name)
PY
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mb() { echo $(( ($1 + 500000) / 1000000 )); }

# Waits until URL answers 200, at most SECONDS seconds.
wait_for() {
    local url=$1 seconds=$2
    for _ in $(seq "$((seconds * 2))"); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url")" = 200 ] && return 0
        sleep 0.5
    done
    return 1
}

# cargo_steps LOG: how many of a build's `cargo build` steps came from the cache, and how many
# there were ("1 3"), from the legacy builder's output ("Step 6/22 : RUN ... cargo build" then
# " ---> Using cache") or BuildKit's plain progress ("#9 [build 4/12] RUN ... cargo build" then
# "#9 CACHED").
cargo_steps() {
    awk '
        /^Step [0-9]+\/[0-9]+ : RUN .*cargo build/ { total++; getline; if (/Using cache/) cached++ }
        /^#[0-9]+ \[[^]]*\] RUN .*cargo build/ { total++; step[$1] = 1 }
        ($1 in step) && / CACHED$/ { cached++; delete step[$1] }
        END { print cached + 0, total + 0 }
    ' "$1"
}

# --- 1. the image --------------------------------------------------------------------------------
# Cold: no layer from the cache, as on a fresh machine (CI's machine may keep a cache between runs).
t0=$SECONDS
export BUILDKIT_PROGRESS=plain      # where BuildKit builds: the log the cache check reads
if docker build --no-cache -t "$image" . >"$work/build-cold.log" 2>&1; then
    cold=$((SECONDS - t0))
    pass "the image builds from the Dockerfile, cold (--no-cache): $cold s"
else
    tail -30 "$work/build-cold.log"
    fatal "docker build failed (the last lines of its output are above)"
fi
size=$(docker image inspect -f '{{.Size}}' "$image")
note "image size: $(mb "$size") MB"
if [ "$size" -lt 200000000 ]; then
    pass "the image is lean: $(mb "$size") MB (under 200 MB)"
else
    fail "the image is $(mb "$size") MB, over 200 MB: has a toolchain or a cache got into the runtime stage?"
fi

# Warm: the same context with one source file changed, as after an edit.
mkdir "$work/context"
tar -C "$repo" --exclude=./target --exclude=./data --exclude=./.env --exclude=./.git -cf - . \
    | tar -C "$work/context" -xf -
echo "// changed by contrib/tests/containers.sh to time a warm build" >>"$work/context/src/main.rs"
t0=$SECONDS
if docker build -t "$image-warm" "$work/context" >"$work/build-warm.log" 2>&1; then
    warm=$((SECONDS - t0))
    pass "the image rebuilds warm after one source file changed: $warm s"
    # The Dockerfile's `cargo build` steps: the dependencies, the client crate, the app. After an
    # edit to the app, only the last may run.
    read -r cached total < <(cargo_steps "$work/build-warm.log")
    if [ "$total" -ge 2 ] && [ "$cached" -eq $((total - 1)) ]; then
        pass "a warm build takes the dependencies and the client crate from the cache ($cached of $total cargo steps)"
    else
        fail "a warm build ran $((total - cached)) of its $total cargo steps (only the app's should run)"
    fi
else
    tail -30 "$work/build-warm.log"
    fail "the warm docker build failed (the last lines of its output are above)"
fi
docker rmi "$image-warm" >/dev/null 2>&1 || true
note "build times: cold $cold s, warm ${warm:-?} s"

# The runtime stage: no compiler, no package cache, no stand-in, no private key.
leftovers=$(docker run --rm --entrypoint sh "$image" -c \
    'for c in cc gcc rustc cargo; do command -v $c; done; ls /var/cache/apt/archives/*.deb /var/lib/apt/lists/*_Packages 2>/dev/null; true')
if [ -z "$leftovers" ]; then
    pass "the runtime stage has no compiler and no package cache"
else
    fail "the runtime stage holds: $leftovers"
fi
export_image() { # IMAGE TAR
    docker create --name "$run-fs" "$1" >/dev/null
    docker export "$run-fs" >"$2"
    docker rm -v "$run-fs" >/dev/null
}
export_image "$image" "$work/fs.tar"
export_image debian:bookworm-slim "$work/base.tar"
keys=$(pem_private_keys "$work/fs.tar" "$work/base.tar")
ours=$(grep -v "(the base image's own)" <<<"$keys" || true)
if tar -tf "$work/fs.tar" | grep -i standin; then
    fail "the image holds the files above, named for the stand-in"
elif [ -n "$ours" ]; then
    fail "the image holds a private key (a PEM 'PRIVATE KEY' block with a body) in: $ours"
elif grep -a -q -F -e "$(sed -n 2p crates/openedx-standin/src/dev_signing_key.pem)" "$work/fs.tar"; then
    fail "the image holds the stand-in's development signing key"
elif grep -a -q -F -e 'would like to:' "$work/fs.tar"; then
    fail "the image's binary holds the stand-in's consent page: built with the demo feature?"
else
    pass "the image holds no stand-in and no private key"
    [ -z "$keys" ] || note "private keys only in the base image's own files, unchanged:" \
        "$(sed "s/ (the base image's own)//" <<<"$keys" | tr '\n' ' ')"
fi
rm -f "$work/fs.tar" "$work/base.tar"

# --- the stand-in --------------------------------------------------------------------------------
# Built on the host (CI has just built its dependencies for the tests) and run in the base image
# the app's runtime stage uses; both are Debian bookworm.
echo "== building the stand-in (cargo build -p openedx-standin)"
cargo build --locked --quiet -p openedx-standin --bin openedx-standin \
    || fatal "cargo build -p openedx-standin failed"
standin="$repo/target/debug/openedx-standin"
# The secret reaches the stand-in through its environment and the app through an env file: never
# through a command line.
export OPENEDX_STANDIN_CLIENT_SECRET
OPENEDX_STANDIN_CLIENT_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')

# start_standin NAME NETWORK HOST_PORT APP_URL: the stand-in as `lms` on NETWORK, listening on
# 8000 there and on 127.0.0.1:HOST_PORT for browsers, with the app at APP_URL registered.
start_standin() {
    local name=$1 network=$2 port=$3 app=$4
    docker run -d --name "$name" --network "$network" --network-alias lms \
        -p "127.0.0.1:$port:8000" \
        -v "$standin:/usr/local/bin/openedx-standin:ro" -e OPENEDX_STANDIN_CLIENT_SECRET \
        debian:bookworm-slim openedx-standin --bind 0.0.0.0:8000 --client-id "${STANDIN_CLIENT_ID:-profiles}" \
        --redirect-uri "$app/authorize/" --redirect-uri "$app/signed-out/" \
        --logout-uri "$app/frontchannel-logout/" >/dev/null
    wait_for "http://127.0.0.1:$port/heartbeat" 20 \
        || { docker logs "$name" 2>&1 | grep -v SECRET | tail -5; fatal "the stand-in did not answer on 127.0.0.1:$port"; }
}

# --- signing in over HTTP, as a browser does -----------------------------------------------------
# sign_in APP_URL LMS_URL JAR: the app's / to the LMS's login form, consent, the callback, and the
# profile page; prints what went wrong and returns 1 on the first step that does not go as the
# LMS and the app do it.
sign_in() {
    local app=$1 lms=$2 jar=$3 out=$work/page.html code location
    step() { # METHOD URL [curl args...]: sets code and location
        local method=$1 url=$2; shift 2
        read -r code location < <(curl -s -o "$out" -w '%{http_code} %{redirect_url}\n' \
            -X "$method" -b "$jar" -c "$jar" "$@" "$url")
    }
    step GET "$app/"
    [ "$code" = 303 ] && [[ $location == "$lms/oauth2/authorize/?"* ]] \
        || { echo "GET $app/ answered $code $location, not 303 to $lms/oauth2/authorize/"; return 1; }
    local authorize=$location
    step GET "$authorize"
    [ "$code" = 302 ] && [[ $location == "$lms/login?next="* ]] \
        || { echo "GET authorize answered $code $location, not 302 to the login form"; return 1; }
    # The login form's hidden `next` is the query's; form and query encode it alike.
    local next=${location#*\?}
    step POST "$lms/login" --data "username=learner&password=learner-password&$next"
    [ "$code" = 302 ] && [[ $location == "$lms/oauth2/authorize/?"* ]] \
        || { echo "POST /login answered $code $location, not 302 back to authorize"; return 1; }
    step GET "$location"
    [ "$code" = 200 ] && grep -q 'name="allow"' "$out" \
        || { echo "GET authorize after login answered $code, not the consent page"; return 1; }
    step POST "$authorize" --data "allow=Authorize"
    [ "$code" = 302 ] && [[ $location == "$app/authorize/?code="* ]] \
        || { echo "POST consent answered $code $location, not 302 to $app/authorize/ with a code"; return 1; }
    step GET "$location"
    [ "$code" = 303 ] && [ "$location" = "$app/profile/" ] && grep -q 'profiles_session' "$jar" \
        || { echo "GET the callback answered $code $location, not 303 to /profile/ with a session cookie"; return 1; }
    signed_in "$app" "$jar"
}

# signed_in APP_URL JAR: the profile page answers with the learner's name.
signed_in() {
    local code
    code=$(curl -s -o "$work/profile.html" -w '%{http_code}' -b "$2" "$1/profile/")
    [ "$code" = 200 ] && grep -q 'Ada Lovelace' "$work/profile.html" \
        || { echo "GET /profile/ answered $code without the learner's name"; return 1; }
}

# --- 2. the image, run beside the stand-in -------------------------------------------------------
echo "== the image, beside the stand-in"
app_port=$(free_port)
lms_port=$(free_port)
app_url=http://127.0.0.1:$app_port
lms_url=http://127.0.0.1:$lms_port
docker network create "$run-net" >/dev/null
start_standin "$run-lms" "$run-net" "$lms_port" "$app_url"
# Only environment variables, as the README's `docker run` shows; the secret in a private file.
umask 077
cat >"$work/app.env" <<EOF
LMS_URL=$lms_url
LMS_INTERNAL_URL=http://lms:8000
LMS_CLIENT_ID=profiles
LMS_CLIENT_SECRET=$OPENEDX_STANDIN_CLIENT_SECRET
PUBLIC_URL=$app_url
EOF
umask 022
# The image's HEALTHCHECK command, probed every 2 s instead of its 30 s to keep the test short.
docker run -d --name "$run-app" --network "$run-net" -p "127.0.0.1:$app_port:8080" \
    --env-file "$work/app.env" -v "$run-data:/data" --health-interval 2s "$image" >/dev/null
wait_for "$app_url/healthz" 30 || { docker logs "$run-app" 2>&1 | tail -20; fatal "the app's container did not answer /healthz"; }

user=$(docker exec "$run-app" id -u)
mode=$(docker exec "$run-app" stat -c '%a %u' /data)
if [ "$user" = 10001 ] && [ "$mode" = "700 10001" ]; then
    pass "the container runs as uid 10001, not root, with /data its own (mode 700)"
else
    fail "the container runs as uid $user with /data mode/owner $mode (want 10001, 700 10001)"
fi

jar=$work/cookies
if why=$(sign_in "$app_url" "$lms_url" "$jar"); then
    pass "a person signs in through the container: login form, consent, callback, profile page"
else
    fail "signing in through the container: $why"
fi

healthcheck=$(docker image inspect -f '{{json .Config.Healthcheck.Test}}' "$image")
health=starting
for _ in $(seq 30); do
    health=$(docker inspect -f '{{.State.Health.Status}}' "$run-app")
    [ "$health" = starting ] || break
    sleep 1
done
if [ "$health" = healthy ] && [ "$healthcheck" = '["CMD","profiles","healthcheck"]' ]; then
    pass "its HEALTHCHECK ($healthcheck) reports healthy"
else
    fail "its HEALTHCHECK $healthcheck reports $health"
fi

docker restart "$run-app" >/dev/null
if wait_for "$app_url/healthz" 30 && why=$(signed_in "$app_url" "$jar"); then
    pass "docker restart keeps the person signed in (the session and its key in the /data volume)"
else
    fail "after docker restart: ${why:-the app did not answer /healthz}"
fi

t0=$(date +%s%N)
docker stop -t 30 "$run-app" >/dev/null
stop_ms=$((($(date +%s%N) - t0) / 1000000))
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$run-app")
app_log=$(docker logs "$run-app" 2>&1)
if [ "$stop_ms" -lt 5000 ] && [ "$exit_code" = 0 ] \
    && grep -q 'shutting down: finishing in-flight requests' <<<"$app_log"; then
    pass "docker stop ends it gracefully in $stop_ms ms (SIGTERM, exit code 0)"
else
    fail "docker stop took $stop_ms ms, exit code $exit_code (want under 5000 ms, 0, and the shutdown line in its log)"
fi
if grep -q -F -e "$OPENEDX_STANDIN_CLIENT_SECRET" <<<"$app_log"; then
    fail "the app's log holds its client secret"
else
    pass "the app's log holds no client secret"
fi
docker rm -f -v "$run-app" "$run-lms" >/dev/null

# --- 3. the compose file -------------------------------------------------------------------------
echo "== the compose file"
# A copy of the project, so the test's env files never touch an operator's contrib/compose/*.env.
project=$work/tutor
mkdir -p "$project/contrib/compose"
cp docker-compose.yml "$project/"
for example in contrib/compose/*.env.example; do
    cp "$example" "$project/${example%.example}"
done
compose() { docker compose --project-directory "$project" -f "$project/docker-compose.yml" "$@"; }
# Reads a value out of `docker compose config` JSON: json_get PROFILE PYTHON_EXPRESSION
json_get() {
    compose -p "$run-config" --profile "$1" config --format json \
        | python3 -c "import json, sys; c = json.load(sys.stdin); print($2)"
}
for profile in tutor devstack postgres; do
    if errors=$(compose -p "$run-config" --profile "$profile" config -q 2>&1); then
        pass "docker compose --profile $profile config accepts the example env files"
    else
        fail "docker compose --profile $profile config: $errors"
    fi
done
got=$(json_get tutor "c['services']['profiles-tutor']['environment']['LMS_INTERNAL_URL'], c['networks']['tutor']['name']")
[ "$got" = "http://lms:8000 tutor_local_default" ] \
    && pass "the tutor profile calls http://lms:8000 on tutor_local_default" \
    || fail "the tutor profile resolves to: $got"
got=$(json_get devstack "c['services']['profiles-devstack']['environment']['LMS_INTERNAL_URL'], c['networks']['devstack']['name']")
[ "$got" = "http://edx.devstack.lms:18000 devstack_default" ] \
    && pass "the devstack profile calls http://edx.devstack.lms:18000 on devstack_default" \
    || fail "the devstack profile resolves to: $got"
got=$(json_get postgres "sorted(s for s in c['services'] if not s.startswith('check')), {c['services'][r]['environment']['DATABASE_URL'] for r in ('profiles-1', 'profiles-2')}")
[ "$got" = "['balancer', 'postgres', 'profiles-1', 'profiles-2'] {'postgres://profiles:profiles@postgres:5432/profiles'}" ] \
    && pass "the postgres profile: two replicas on one PostgreSQL behind the balancer" \
    || fail "the postgres profile resolves to: $got"
note "the postgres profile is validated with \`config\` only: its images (postgres:16, caddy:2) cannot be pulled on this machine"

docker network create tutor_local_default >/dev/null
own_tutor_network=1

# Without its env file, `up` stops with the README's instruction.
missing=$work/missing
mkdir -p "$missing/contrib/compose"
cp docker-compose.yml "$missing/"
if out=$(PROFILES_IMAGE=$image docker compose --project-directory "$missing" -f "$missing/docker-compose.yml" \
    -p "$run-missing" --profile tutor up --no-build 2>&1); then
    fail "docker compose --profile tutor up started without contrib/compose/tutor.env"
elif grep -q 'copy contrib/compose/tutor.env.example to contrib/compose/tutor.env' <<<"$out"; then
    pass "a missing contrib/compose/tutor.env stops up with the README's instruction"
else
    fail "a missing contrib/compose/tutor.env stops up without the instruction: $out"
fi

# The tutor profile on Tutor's network, with the stand-in as `lms`: the app's own calls go to
# http://lms:8000 (LMS_INTERNAL_URL, from the example), browsers to the published LMS_URL, which
# inside the app's container would be the container itself.
start_standin "$run-tutor-lms" tutor_local_default "$lms_port" http://127.0.0.1:8080
sed -i -e "s|^LMS_URL=.*|LMS_URL=$lms_url|" \
    -e "s|^LMS_CLIENT_SECRET=.*|LMS_CLIENT_SECRET=$OPENEDX_STANDIN_CLIENT_SECRET|" \
    "$project/contrib/compose/tutor.env"
chmod 600 "$project/contrib/compose/tutor.env"
if PROFILES_IMAGE=$image compose -p "$run-tutor" --profile tutor up -d --no-build >"$work/up.log" 2>&1 \
    && wait_for http://127.0.0.1:8080/healthz 30; then
    pass "docker compose --profile tutor up runs the image on tutor_local_default"
    if why=$(sign_in http://127.0.0.1:8080 "$lms_url" "$work/tutor-cookies"); then
        pass "a person signs in through the tutor profile (browser at $lms_url, server calls to http://lms:8000)"
    else
        fail "signing in through the tutor profile: $why"
    fi
else
    cat "$work/up.log"
    fail "docker compose --profile tutor up did not bring the app up on 127.0.0.1:8080"
fi
# Port 8080 is tutor dev's next.
compose -p "$run-tutor" --profile tutor down -v >/dev/null 2>&1
docker rm -f -v "$run-tutor-lms" >/dev/null

# --- 4. the Tutor plugin, deployed ---------------------------------------------------------------
echo "== the Tutor plugin, under tutor dev"
mkdir "$work/plugin"
cp -r contrib/tutor/pyproject.toml contrib/tutor/tutorprofiles "$work/plugin/"
python3 -m venv "$work/venv"
if ! "$work/venv/bin/pip" install --quiet --disable-pip-version-check "tutor>=21,<22" "$work/plugin" \
    >"$work/pip.log" 2>&1; then
    tail -20 "$work/pip.log"
    fatal "could not install tutor and the plugin (pip's output above)"
fi
# Tutor's warnings about running as root and about its default plugins not installed are noise here.
tutor() { "$work/venv/bin/tutor" "$@" 2> >(grep -v 'running Tutor as root\|Failed to enable plugin' >&2); }
export TUTOR_ROOT=$work/tutor-root TUTOR_PLUGINS_ROOT=$work/tutor-plugins
tutor plugins enable profiles >/dev/null
# The image this test built stands for the one `tutor images build profiles` builds (Tutor builds
# with buildx, which this machine does not have).
# SQLite: Tutor's MySQL (the plugin's default database) is an image this machine cannot pull.
tutor config save --set "PROFILES_DOCKER_IMAGE=$image" --set PROFILES_DATABASE=sqlite >/dev/null
# What Tutor's permissions job does before the app starts: the data folder is the app user's.
docker run --rm -v "$TUTOR_ROOT/data:/data" debian:bookworm-slim \
    sh -c 'mkdir -p /data/profiles && chown 10001 /data/profiles && chmod 700 /data/profiles'
own_tutor_dev=1
# Only the app: its other dependencies (the LMS's images, the permissions job's) cannot be pulled.
if tutor dev dc up -d --no-deps profiles >"$work/tutor-up.log" 2>&1; then
    # The stand-in as `lms` on tutor dev's network, on 8000 as the LMS's runserver is, with the
    # plugin's generated client secret.
    # tutor dev signs in with the plugin's dev application, which has its own id and secret.
    OPENEDX_STANDIN_CLIENT_SECRET=$(tutor config printvalue PROFILES_OAUTH2_SECRET_DEV)
    STANDIN_CLIENT_ID=$(tutor config printvalue PROFILES_OAUTH2_CLIENT_ID_DEV)
    export STANDIN_CLIENT_ID
    start_standin "$run-tutor-dev-lms" tutor_dev_default 8000 http://profiles.local.openedx.io:8080
    # Browsers resolve *.local.openedx.io to 127.0.0.1 through public DNS; curl is told so here.
    mkdir "$work/curl"
    printf 'resolve = "%s:127.0.0.1"\n' profiles.local.openedx.io:8080 local.openedx.io:8000 \
        >"$work/curl/.curlrc"
    if wait_for http://127.0.0.1:8080/healthz 30 \
        && why=$(CURL_HOME=$work/curl sign_in http://profiles.local.openedx.io:8080 \
            http://local.openedx.io:8000 "$work/tutor-dev-cookies"); then
        pass "a person signs in through the plugin's service under tutor dev (http://profiles.local.openedx.io:8080, the LMS at lms:8000)"
    else
        fail "signing in through the plugin's service under tutor dev: ${why:-the app did not answer /healthz}"
    fi
else
    cat "$work/tutor-up.log"
    fail "tutor dev dc up -d --no-deps profiles did not start the plugin's service"
fi
