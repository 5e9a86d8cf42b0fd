"""CI for relying_party.py: against the real openedx-standin binary, a browser (a requests
session) signs in through the sample, which then refreshes, meets injected faults (a proxy's 502,
then a token endpoint slower than its timeout) and says so, recovers, and signs out, revoking.
The sample's own request log goes to stderr.

    python3 check.py path/to/openedx-standin
"""

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


standin_bin = sys.argv[1]
lms_port, rp_port = free_port(), free_port()
LMS = f"http://127.0.0.1:{lms_port}"
RP = f"http://127.0.0.1:{rp_port}"
os.environ.update({
    "LMS_URL": LMS, "LMS_CLIENT_ID": "py-app", "LMS_CLIENT_SECRET": "py-secret",
    "LMS_REDIRECT_URI": f"{RP}/callback", "LMS_TIMEOUT_SECS": "1",
})
standin = subprocess.Popen(
    [standin_bin, "--bind", f"127.0.0.1:{lms_port}", "--client-id", "py-app",
     "--redirect-uri", f"{RP}/callback"],
    env={**os.environ, "OPENEDX_STANDIN_CLIENT_SECRET": "py-secret"},
    stdout=subprocess.PIPE, text=True,
)
try:
    import requests

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import relying_party

    for _ in range(100):
        try:
            requests.get(f"{LMS}/heartbeat", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    server = relying_party.serve(rp_port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser = requests.Session()

    def go(method, url, **kwargs):
        """One browser step, redirects not followed, so each hop is checked."""
        response = browser.request(method, url, allow_redirects=False, timeout=10, **kwargs)
        return response, response.headers.get("Location", "")

    def admin(method, path, **kwargs):
        response = requests.request(method, f"{LMS}/_standin/{path}", timeout=5, **kwargs)
        assert response.ok, (path, response.status_code, response.text)
        return response

    # Sign in: the sample sends the browser to the LMS, which asks for a login, then consent.
    _, to_lms = go("GET", f"{RP}/login")
    assert to_lms.startswith(f"{LMS}/oauth2/authorize/") and "code_challenge=" in to_lms, to_lms
    _, to_login = go("GET", to_lms)
    next_url = urllib.parse.parse_qs(urllib.parse.urlparse(to_login).query)["next"][0]
    _, back = go("POST", f"{LMS}/login",
                 data={"username": "learner", "password": "learner-password", "next": next_url})
    consent, _ = go("GET", LMS + back)
    assert "Authorize py-app" in consent.text, consent.text
    _, callback = go("POST", LMS + back, data={"allow": "Authorize"})
    assert callback.startswith(f"{RP}/callback?code="), callback
    _, home = go("GET", callback)
    page, _ = go("GET", RP + home)
    assert "Signed in as Ada Lovelace" in page.text, page.text
    print("signed in")

    # Refresh: the refresh token rotates.
    before = next(iter(relying_party.SESSIONS.values()))["token"]["refresh_token"]
    _, home = go("POST", f"{RP}/refresh")
    after = next(iter(relying_party.SESSIONS.values()))["token"]["refresh_token"]
    assert home == "/" and after != before
    print("refreshed")

    # Injected faults: the sample says what happened and keeps the person signed in.
    admin("PUT", "faults/token", json={"status": 502, "content_type": "text/html",
                                       "body": "<h1>502 Bad Gateway</h1>"})
    failed, _ = go("POST", f"{RP}/refresh")
    assert failed.status_code == 502 and "HTTP 502" in failed.text, failed.text
    admin("PUT", "faults/token", json={"delay_ms": 1500})
    failed, _ = go("POST", f"{RP}/refresh")
    assert failed.status_code == 502 and "did not answer" in failed.text, failed.text
    admin("DELETE", "faults/token")
    page, _ = go("GET", f"{RP}/")
    assert "Signed in as Ada Lovelace" in page.text, page.text
    _, home = go("POST", f"{RP}/refresh")
    assert home == "/", "the fault cleared, a refresh works again"
    print("met a 502 and a timeout, said so, stayed signed in, recovered")

    # Sign out: the refresh token is revoked, and the browser sent through the LMS's logout.
    token = next(iter(relying_party.SESSIONS.values()))["token"]
    _, to_logout = go("POST", f"{RP}/logout")
    assert to_logout.startswith(f"{LMS}/logout?client_id=py-app"), to_logout
    journal = admin("GET", "journal").json()
    assert any(e["endpoint"] == "revoke" and e["status"] == 200 for e in journal), journal
    try:
        relying_party.refresh(token)
        raise AssertionError("a revoked refresh token still works")
    except relying_party.LmsError as e:
        assert e.oauth_error == "invalid_grant", e
    print("signed out and revoked")
    print("python sample: ok")
finally:
    standin.terminate()
    standin.wait(timeout=10)
