# msal-python's side of bench/cli_bench.sh: the same silent call `msal token`
# makes, as a whole process (start, load the cache file, find the account,
# acquire_token_silent, print the token). Debian's python3-msal.
#
#   /usr/bin/python3 -I bench/cli_bench.py CACHE CLIENT_ID AUTHORITY USERNAME SCOPE
#
# msal-python makes instance and OpenID discovery requests when it builds
# the application and looks up aliases; a stub http_client answers them
# here, so nothing leaves the machine and no time goes to a network.
import json
import sys

import msal

cache_path, client_id, authority, username, scope = sys.argv[1:6]
host = authority.split("/")[2]


class Response:
    def __init__(self, body):
        self.status_code = 200
        self.text = json.dumps(body)
        self.headers = {}

    def raise_for_status(self):
        pass


class LocalDiscovery:
    """Answers discovery as Entra would; any other request is a bug."""

    def get(self, url, **_):
        if "/discovery/instance" in url:
            return Response({
                "tenant_discovery_endpoint": authority + "/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{
                    "preferred_network": "login.microsoftonline.com",
                    "preferred_cache": "login.windows.net",
                    "aliases": ["login.microsoftonline.com", "login.windows.net",
                                "login.microsoft.com", "sts.windows.net"],
                }],
            })
        if url.endswith("/.well-known/openid-configuration"):
            return Response({
                "issuer": authority + "/v2.0",
                "authorization_endpoint": authority + "/oauth2/v2.0/authorize",
                "token_endpoint": authority + "/oauth2/v2.0/token",
                "device_authorization_endpoint": authority + "/oauth2/v2.0/devicecode",
            })
        raise RuntimeError("unexpected request: " + url)

    def post(self, url, **_):
        raise RuntimeError("unexpected request: POST " + url)

    def close(self):
        pass


cache = msal.SerializableTokenCache()
with open(cache_path) as f:
    cache.deserialize(f.read())
app = msal.PublicClientApplication(client_id, authority=authority, token_cache=cache,
                                   http_client=LocalDiscovery())
accounts = app.get_accounts(username=username)
result = app.acquire_token_silent([scope], account=accounts[0]) if accounts else None
if not result or "access_token" not in result:
    sys.exit("no token: %r" % (result,))
print(result["access_token"])
