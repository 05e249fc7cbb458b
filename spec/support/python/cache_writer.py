"""One msal-python writer of a shared cache file, as the Azure CLI writes it:
msal_extensions' PersistedTokenCache over a FilePersistence, each write a
locked reload-modify-save. Adds `count` access tokens whose target names
this writer: cache_writer.py PATH TAG COUNT CLIENT_ID HOME_ACCOUNT_ID REALM
"""
import sys
import time

from msal_extensions import FilePersistence, PersistedTokenCache


def main():
    path, tag, count, client_id, home_account_id, realm = sys.argv[1:7]
    cache = PersistedTokenCache(FilePersistence(path))
    now = int(time.time())
    for i in range(int(count)):
        entry = {
            "credential_type": "AccessToken", "secret": "secret-%s-%d" % (tag, i),
            "home_account_id": home_account_id, "environment": "login.microsoftonline.com",
            "client_id": client_id, "realm": realm, "target": "%s.%d" % (tag, i),
            "token_type": "Bearer", "cached_at": str(now), "expires_on": str(now + 3600),
            "extended_expires_on": str(now + 3600),
        }
        cache.modify("AccessToken", entry, {"secret": entry["secret"]})
    print("done")


main()
