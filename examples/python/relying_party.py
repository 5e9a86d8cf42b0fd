"""A relying party of the Open edX LMS in Python: sign-in with PKCE, refresh, revocation, errors.

Only `requests` beyond the standard library. Run it against a real LMS or the stand-in:

    OPENEDX_STANDIN_CLIENT_SECRET=py-secret openedx-standin --client-id py-app \
        --redirect-uri http://127.0.0.1:3000/callback
    LMS_URL=http://127.0.0.1:8090 LMS_CLIENT_ID=py-app LMS_CLIENT_SECRET=py-secret \
        python3 relying_party.py
    # open http://127.0.0.1:3000/ and sign in as learner / learner-password

The Open edX habits it follows: token_type=jwt in the POST body (never the query string), the
`JWT` scheme (not `Bearer`) for JWTs, no trailing slash on the user APIs, refresh tokens that
rotate (keep the new one), revocation of the refresh token (a JWT cannot be revoked).
"""

import base64
import hashlib
import html
import http.server
import os
import secrets
import urllib.parse

import requests

LMS_URL = os.environ.get("LMS_URL", "http://127.0.0.1:8090").rstrip("/")
CLIENT_ID = os.environ.get("LMS_CLIENT_ID", "py-app")
CLIENT_SECRET = os.environ.get("LMS_CLIENT_SECRET", "")  # from the environment, never an argument
REDIRECT_URI = os.environ.get("LMS_REDIRECT_URI", "http://127.0.0.1:3000/callback")
TIMEOUT = float(os.environ.get("LMS_TIMEOUT_SECS", "10"))


class LmsError(Exception):
    """What went wrong talking to the LMS, in words a person can act on; never holds a token."""

    def __init__(self, kind, message, oauth_error=None):
        super().__init__(message)
        self.kind, self.oauth_error = kind, oauth_error


def call(method, path, **kwargs):
    """One call to the LMS; every failure becomes an LmsError. Redirects are not followed."""
    try:
        response = requests.request(method, LMS_URL + path, timeout=TIMEOUT,
                                    allow_redirects=False, **kwargs)
    except requests.Timeout:
        raise LmsError("timeout", f"the LMS did not answer {path} within {TIMEOUT:g} s")
    except requests.ConnectionError as e:
        raise LmsError("unreachable", f"could not reach the LMS at {LMS_URL}: {e}")
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = None
    if response.status_code == 200 and body is not None:
        return body
    if isinstance(body, dict) and "error" in body:  # an OAuth error: invalid_grant, invalid_client...
        raise LmsError("refused", f"the LMS said {body['error']} at {path}", body["error"])
    if response.status_code in (401, 403):
        raise LmsError("refused", f"the LMS refused the token at {path} ({response.status_code})")
    raise LmsError("status", f"the LMS answered {path} with HTTP {response.status_code}")


def token_request(**fields):
    # HTTP Basic client authentication; token_type=jwt goes in the body, where the LMS reads it.
    return call("POST", "/oauth2/access_token", auth=(CLIENT_ID, CLIENT_SECRET),
                data={"token_type": "jwt", **fields})


def authorize_url(state, verifier):
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
        "scope": "user_id email profile", "state": state,
        "code_challenge": challenge.rstrip(b"=").decode(), "code_challenge_method": "S256",
    })
    return f"{LMS_URL}/oauth2/authorize/?{query}"


def exchange_code(code, verifier):
    return token_request(grant_type="authorization_code", code=code, redirect_uri=REDIRECT_URI,
                         code_verifier=verifier)


def refresh(token):
    """A new token; the old refresh token is spent, so the caller must keep the new one."""
    return token_request(grant_type="refresh_token", refresh_token=token["refresh_token"])


def revoke(token):
    call("POST", "/oauth2/revoke_token", auth=(CLIENT_ID, CLIENT_SECRET),
         data={"token": token["refresh_token"], "token_type_hint": "refresh_token"})


def profile(token):
    headers = {"Authorization": f"JWT {token['access_token']}"}  # JWT, not Bearer
    me = call("GET", "/api/user/v1/me", headers=headers)  # no trailing slash
    return call("GET", "/api/user/v1/accounts/" + urllib.parse.quote(me["username"]),
                headers=headers)


SESSIONS = {}  # cookie value -> {"state", "verifier"} during sign-in, {"token", "name"} after


class Handler(http.server.BaseHTTPRequestHandler):
    def session(self):
        cookie = self.headers.get("Cookie", "")
        for pair in cookie.split(";"):
            name, _, value = pair.strip().partition("=")
            if name == "rp_session" and value in SESSIONS:
                return value, SESSIONS[value]
        return None, {}

    def send(self, status, body="", location=None, cookie=None):
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        if cookie:
            self.send_header("Set-Cookie", f"rp_session={cookie}; Path=/; HttpOnly; SameSite=Lax")
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(body.encode())

    def fail(self, error):
        # The person sees what happened and may try again; the session is kept.
        self.send(502 if error.kind != "refused" else 400,
                  f"<p>Sign-in trouble: {html.escape(str(error))}.</p><a href=/>Back</a>")

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        sid, session = self.session()
        if url.path == "/":
            if "token" in session:
                return self.send(200, f"<p>Signed in as {html.escape(session['name'])}.</p>"
                                      "<form method=post action=/refresh><button>Refresh</button></form>"
                                      "<form method=post action=/logout><button>Sign out</button></form>")
            return self.send(200, "<a href=/login>Sign in with Open edX</a>")
        if url.path == "/login":
            sid, state, verifier = secrets.token_urlsafe(), secrets.token_urlsafe(), secrets.token_urlsafe(48)
            SESSIONS[sid] = {"state": state, "verifier": verifier}
            return self.send(302, location=authorize_url(state, verifier), cookie=sid)
        if url.path == "/callback":
            query = dict(urllib.parse.parse_qsl(url.query))
            pending = SESSIONS.pop(sid, {}) if "verifier" in session else {}  # single use
            if "error" in query:  # access_denied: the person said no
                return self.send(403, f"<p>The LMS said {html.escape(query['error'])}.</p>")
            if not pending or not secrets.compare_digest(query.get("state", ""), pending["state"]):
                return self.send(400, "<p>This sign-in was not started here.</p>")
            try:
                token = exchange_code(query.get("code", ""), pending["verifier"])
                account = profile(token)
            except LmsError as e:
                return self.fail(e)
            sid = secrets.token_urlsafe()  # a new session id at sign-in
            SESSIONS[sid] = {"token": token, "name": account.get("name") or account["username"]}
            return self.send(302, location="/", cookie=sid)
        self.send(404, "<p>Not found.</p>")

    def do_POST(self):
        sid, session = self.session()
        if "token" not in session:
            return self.send(302, location="/")
        if self.path == "/refresh":
            try:
                session["token"] = refresh(session["token"])  # keep the new refresh token
            except LmsError as e:
                if e.oauth_error == "invalid_grant":  # revoked or expired: sign in again
                    SESSIONS.pop(sid, None)
                return self.fail(e)
            return self.send(302, location="/")
        if self.path == "/logout":
            SESSIONS.pop(sid, None)
            try:
                revoke(session["token"])
            except LmsError as e:  # signed out here anyway; the JWT expires on its own
                self.log_message("revocation failed: %s", e)
            back = urllib.parse.urlencode({"client_id": CLIENT_ID, "redirect_url": "http://127.0.0.1:3000/"})
            return self.send(302, location=f"{LMS_URL}/logout?{back}")
        self.send(404, "<p>Not found.</p>")


def serve(port=3000):
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)


if __name__ == "__main__":
    print("open http://127.0.0.1:3000/")
    serve().serve_forever()
