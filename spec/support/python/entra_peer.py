"""msal-python (Debian's python3-msal + python3-msal-extensions, the Azure
CLI's engine) as a peer of one cache file, against the Entra-like authority
of the specs (spec/support/node/entra_server.js).

msal-python only takes https authorities, so the app's authority is the
public cloud's (https://login.microsoftonline.com/<tenant>) and its
http_client answers it from the local server: requests to the public host
go to BASE, the OpenID configuration's endpoints are named back on the
public host (its issuer stays the server's: the id tokens carry it), and
instance discovery gets Entra's public-cloud answer without a request.

    entra_peer.py sign_in PATH CLIENT TENANT BASE SCOPE...
        auth code flow (the server consents at once); prints
        {"home_account_id", "refresh_token"}
    entra_peer.py silent PATH CLIENT TENANT BASE SCOPE...
        acquire_token_silent(force_refresh=True) for the only account;
        prints {"accounts", "access_token"} or {"error", ...}
"""
import json
import sys
from urllib.parse import parse_qsl, urlsplit

import msal
import requests
from msal_extensions import FilePersistence, PersistedTokenCache

PUBLIC = "https://login.microsoftonline.com"
REDIRECT = "http://localhost:8400/"
ALIASES = ["login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net"]


class Answer:
    """What msal-python reads of a response (requests' shape)."""

    def __init__(self, status, text, headers):
        self.status_code, self.text, self.headers = status, text, headers

    def raise_for_status(self):
        if self.status_code >= 400:
            raise RuntimeError("HTTP %d: %s" % (self.status_code, self.text))


class Local:
    def __init__(self, base):
        self.base, self.session = base, requests.Session()

    def _send(self, method, url, **kwargs):
        # msal-python tries the cloud's other hosts (aliases) too when the
        # cache holds refresh tokens under them
        u = urlsplit(url)
        if u.scheme != "https" or u.hostname not in ALIASES or u.port not in (None, 443):
            raise RuntimeError("msal-python asked another host: " + url)
        public = "https://" + u.hostname
        kwargs.pop("timeout", None)
        r = self.session.request(method, self.base + url[url.index("/", len("https://")):], allow_redirects=False,
                                 timeout=30, **kwargs)
        text = r.text
        if r.status_code == 200 and u.path.endswith("/.well-known/openid-configuration"):
            doc = json.loads(text)
            for k, v in doc.items():
                if k != "issuer" and isinstance(v, str) and v.startswith(self.base + "/"):
                    doc[k] = public + v[len(self.base):]
            text = json.dumps(doc)
        return Answer(r.status_code, text, dict(r.headers))

    def get(self, url, **kwargs):
        if "/discovery/instance" in url:
            return Answer(200, json.dumps({"api-version": "1.1",
                "tenant_discovery_endpoint": PUBLIC + "/common/v2.0/.well-known/openid-configuration",
                "metadata": [{"preferred_network": "login.microsoftonline.com",
                              "preferred_cache": "login.windows.net", "aliases": ALIASES}]}), {})
        return self._send("GET", url, **kwargs)

    def post(self, url, **kwargs):
        return self._send("POST", url, **kwargs)

    def close(self):
        self.session.close()


def main():
    command, path, client_id, tenant, base = sys.argv[1:6]
    scopes = sys.argv[6:]
    http = Local(base)
    app = msal.PublicClientApplication(client_id, authority=PUBLIC + "/" + tenant, http_client=http,
                                       token_cache=PersistedTokenCache(FilePersistence(path)))
    if command == "sign_in":
        flow = app.initiate_auth_code_flow(scopes, redirect_uri=REDIRECT)
        answer = http.get(flow["auth_uri"])
        location = answer.headers.get("location") or answer.headers.get("Location")
        if not location:
            raise RuntimeError("authorize did not redirect: %d %s" % (answer.status_code, answer.text))
        r = app.acquire_token_by_auth_code_flow(flow, dict(parse_qsl(urlsplit(location).query)))
        if "error" in r:
            raise RuntimeError("sign-in failed: %s" % json.dumps(r))
        print(json.dumps({"home_account_id": app.get_accounts()[0]["home_account_id"],
                          "refresh_token": r["refresh_token"]}))
    elif command == "silent":
        accounts = app.get_accounts()
        r = app.acquire_token_silent_with_error(scopes, accounts[0], force_refresh=True) if accounts else None
        out = {"accounts": len(accounts)}
        if r and "access_token" in r:
            out["access_token"] = r["access_token"]
        elif r:
            out["error"], out["error_description"] = r.get("error"), r.get("error_description")
        print(json.dumps(out))
    else:
        raise SystemExit("unknown command " + command)


main()
