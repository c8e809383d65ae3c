"""An independent OIDC relying party (Authlib, from PyPI) logs in through a running Gatehouse.

Usage: authlib_rp_check.py SERVER_URL ISSUER CLIENT_ID CLIENT_SECRET CALLBACK USERNAME PASSWORD

SERVER_URL is where this script reaches the server's pages; ISSUER is the provider's issuer as
published in discovery. The login forms are filled in like a browser would. Exits non-zero with
the failing step when anything does not verify.
"""

import re
import sys
from urllib.parse import urljoin, urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt


def step(name):
    print(f"- {name}", flush=True)


def local(server_url, url):
    """Sends requests for the external host to the address the server listens on."""
    parts = urlsplit(url)
    return urljoin(server_url, parts.path + (("?" + parts.query) if parts.query else ""))


def browse(server_url, start, callback, username, password):
    browser = requests.Session()
    response = browser.get(local(server_url, start), allow_redirects=False)
    url = response.url
    for _ in range(20):
        location = response.headers.get("Location")
        if location:
            if location.startswith(callback):
                return location
            url = local(server_url, urljoin(url, location))
            response = browser.get(url, allow_redirects=False)
            continue
        html = response.text
        csrf = re.search(r'name=csrf value="([^"]+)"', html)
        assert csrf, f"no form at {url}: {html[:500]}"
        if "name=uid_field" in html:
            field = {"uid_field": username}
        elif "name=password" in html:
            field = {"password": password}
        else:
            raise AssertionError(f"unexpected page at {url}")
        action = url.split("?")[0]
        response = browser.post(action, data={**field, "csrf": csrf.group(1)}, allow_redirects=False)
    raise AssertionError("never reached the callback")


def main(server_url, issuer, client_id, client_secret, callback, username, password):
    step("discovery")
    config = requests.get(local(server_url, issuer + ".well-known/openid-configuration")).json()
    assert config["issuer"] == issuer, config

    client = OAuth2Session(
        client_id,
        client_secret,
        scope="openid profile email groups",
        redirect_uri=callback,
        code_challenge_method="S256",
    )
    verifier = generate_token(64)
    nonce = generate_token(20)
    uri, state = client.create_authorization_url(config["authorization_endpoint"], code_verifier=verifier, nonce=nonce)

    step("login and authorization")
    redirected = browse(server_url, uri, callback, username, password)

    step("code exchange")
    token = client.fetch_token(
        local(server_url, config["token_endpoint"]),
        authorization_response=redirected,
        code_verifier=verifier,
        state=state,
    )

    step("ID token signature and claims")
    keys = JsonWebKey.import_key_set(requests.get(local(server_url, config["jwks_uri"])).json())
    claims = jwt.decode(
        token["id_token"],
        keys,
        claims_options={"iss": {"essential": True, "value": issuer}, "aud": {"essential": True, "value": client_id}},
    )
    claims.validate()
    assert claims["nonce"] == nonce, claims
    assert claims["preferred_username"] == username, claims

    step("userinfo")
    info = client.get(local(server_url, config["userinfo_endpoint"])).json()
    assert info["sub"] == claims["sub"], info
    assert info["email"] == username, info
    print("authlib relying party check passed")


if __name__ == "__main__":
    main(*sys.argv[1:8])
