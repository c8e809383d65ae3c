"""Drives Gatehouse's authenticators API through the authentik-client SDK (strict models).

Usage: authenticators_check.py BASE_URL ADMIN_TOKEN USER_TOKEN USER_PK

The user (USER_TOKEN, pk USER_PK) has two authenticator apps and one passkey. The user lists,
renames and deletes their own; an administrator lists everyone's and renames one; neither ever
receives a secret. Exits 0 when every step passed, printing each step.
"""

import sys

import authentik_client as ak
from authentik_client.exceptions import ApiException


def step(name, fn):
    print(f"- {name}", flush=True)
    return fn()


def refused(fn, status):
    try:
        fn()
    except ApiException as e:
        assert e.status == status, (e.status, e.body)
        return
    raise AssertionError(f"expected HTTP {status}")


def client(base_url, token):
    config = ak.Configuration(host=f"{base_url}/api/v3", access_token=token)
    return ak.AuthenticatorsApi(ak.ApiClient(config))


def main(base_url, admin_token, user_token, user_pk):
    mine = client(base_url, user_token)
    admin = client(base_url, admin_token)

    devices = step("list all own devices", mine.authenticators_all_list)
    kinds = sorted(d.type for d in devices)
    assert kinds == [
        "authentik_stages_authenticator_totp.TOTPDevice",
        "authentik_stages_authenticator_totp.TOTPDevice",
        "authentik_stages_authenticator_webauthn.WebAuthnDevice",
    ], kinds
    assert all(d.confirmed for d in devices)

    totp = step("list own TOTP devices", mine.authenticators_totp_list)
    assert totp.pagination.count == 2, totp
    assert all(d.user.pk == user_pk for d in totp.results)
    passkeys = step("list own passkeys", mine.authenticators_webauthn_list)
    assert passkeys.pagination.count == 1, passkeys
    passkey = passkeys.results[0]
    assert passkey.name == "Laptop", passkey

    first, second = totp.results
    step("read own TOTP device", lambda: mine.authenticators_totp_retrieve(id=first.pk))
    renamed = step(
        "rename own TOTP device",
        lambda: mine.authenticators_totp_partial_update(
            id=first.pk, patched_totp_device_request=ak.PatchedTOTPDeviceRequest(name="Phone app")
        ),
    )
    assert renamed.name == "Phone app", renamed
    step(
        "rename own passkey",
        lambda: mine.authenticators_webauthn_partial_update(
            id=passkey.pk, patched_web_authn_device_request=ak.PatchedWebAuthnDeviceRequest(name="Work laptop")
        ),
    )
    step("delete own TOTP device", lambda: mine.authenticators_totp_destroy(id=second.pk))
    refused(lambda: mine.authenticators_totp_retrieve(id=second.pk), 404)
    refused(lambda: mine.authenticators_admin_all_list(), 403)

    everyone = step("admin lists the user's devices", lambda: admin.authenticators_admin_all_list(user=user_pk))
    assert len(everyone) == 2, everyone
    step("admin lists passkeys", admin.authenticators_admin_webauthn_list)
    listed = step("admin lists TOTP devices", lambda: admin.authenticators_admin_totp_list(search="phone"))
    assert [d.pk for d in listed.results] == [first.pk], listed
    step(
        "admin renames a TOTP device",
        lambda: admin.authenticators_admin_totp_update(
            id=first.pk, totp_device_request=ak.TOTPDeviceRequest(name="Renamed by admin")
        ),
    )
    own = step("the admin's own devices", admin.authenticators_all_list)
    assert own == [], own
    print("authenticators check passed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
