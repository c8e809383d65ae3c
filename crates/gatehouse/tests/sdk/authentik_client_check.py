"""Drives a running Gatehouse through the authentik-client SDK (strict pydantic models).

Usage: authentik_client_check.py BASE_URL TOKEN

Every response is validated by the SDK's models; a field Gatehouse omits or mistypes raises and
fails the check. Exits 0 when every step passed; prints each step so a failure is easy to place.
"""

import sys
import uuid

import authentik_client as ak
from authentik_client.exceptions import ApiException


def step(name, fn):
    print(f"- {name}", flush=True)
    return fn()


def main(base_url, token):
    config = ak.Configuration(host=f"{base_url}/api/v3", access_token=token)
    client = ak.ApiClient(config)
    core = ak.CoreApi(client)
    flows = ak.FlowsApi(client)
    providers = ak.ProvidersApi(client)
    policies = ak.PoliciesApi(client)
    stages = ak.StagesApi(client)
    sources = ak.SourcesApi(client)
    outposts = ak.OutpostsApi(client)
    events = ak.EventsApi(client)
    suffix = uuid.uuid4().hex[:8]

    users = step("list users", lambda: core.core_users_list(include_groups=True))
    assert any(u.username == "admin" for u in users.results), users
    assert users.pagination.count >= 1

    group = step("create group", lambda: core.core_groups_create(ak.GroupRequest(name=f"SDK Group {suffix}")))
    child = step(
        "create child group",
        lambda: core.core_groups_create(ak.GroupRequest(name=f"SDK Child {suffix}", parents=[group.pk])),
    )
    assert child.parents == [group.pk]
    user = step(
        "create user",
        lambda: core.core_users_create(
            ak.UserRequest(username=f"sdk-{suffix}@example.com", name="SDK User", email=f"sdk-{suffix}@example.com")
        ),
    )
    step(
        "add user to group",
        lambda: core.core_groups_add_user_create(group_uuid=group.pk, user_account_request=ak.UserAccountRequest(pk=user.pk)),
    )
    fetched = step("read group", lambda: core.core_groups_retrieve(group_uuid=group.pk, include_users=True))
    assert user.pk in fetched.users, fetched
    assert child.pk in fetched.children, fetched
    step("read user", lambda: core.core_users_retrieve(id=user.pk))
    step(
        "patch user",
        lambda: core.core_users_partial_update(id=user.pk, patched_user_request=ak.PatchedUserRequest(name="SDK User 2")),
    )
    step(
        "set password",
        lambda: core.core_users_set_password_create(
            id=user.pk, user_password_set_request=ak.UserPasswordSetRequest(password="correct horse battery")
        ),
    )
    step("list groups", lambda: core.core_groups_list())

    implicit = step(
        "find implicit consent flow",
        lambda: flows.flows_instances_list(slug="default-provider-authorization-implicit-consent").results[0],
    )
    invalidation = step(
        "find invalidation flow", lambda: flows.flows_instances_retrieve(slug="default-provider-invalidation-flow")
    )
    step("list flows", lambda: flows.flows_instances_list())

    oauth = step(
        "create OAuth2 provider",
        lambda: providers.providers_oauth2_create(
            ak.OAuth2ProviderRequest(
                name=f"SDK OAuth {suffix}",
                authorization_flow=implicit.pk,
                invalidation_flow=invalidation.pk,
                redirect_uris=[ak.RedirectURIRequest(matching_mode="strict", url="https://app.example.com/callback")],
            )
        ),
    )
    assert oauth.client_secret
    step("list OAuth2 providers", lambda: providers.providers_oauth2_list())
    mappings = ak.PropertymappingsApi(client)
    mapping = step(
        "create scope mapping",
        lambda: mappings.propertymappings_provider_scope_create(
            ak.ScopeMappingRequest(
                name=f"SDK mapping {suffix}",
                scope_name="sdk",
                expression='{"nickname": user.username}',
            )
        ),
    )
    step("list scope mappings", lambda: mappings.propertymappings_provider_scope_list(scope_name="sdk"))
    oauth = step(
        "select the scope mapping",
        lambda: providers.providers_oauth2_partial_update(
            id=oauth.pk, patched_o_auth2_provider_request=ak.PatchedOAuth2ProviderRequest(property_mappings=[mapping.pk])
        ),
    )
    assert oauth.property_mappings == [mapping.pk], oauth.property_mappings
    proxy = step(
        "create proxy provider",
        lambda: providers.providers_proxy_create(
            ak.ProxyProviderRequest(
                name=f"SDK Proxy {suffix}",
                authorization_flow=implicit.pk,
                invalidation_flow=invalidation.pk,
                external_host="https://app.example.com",
                mode="forward_single",
                access_token_validity="weeks=4",
            )
        ),
    )
    step("list proxy providers", lambda: providers.providers_proxy_list())
    app = step(
        "create application",
        lambda: core.core_applications_create(
            ak.ApplicationRequest(name=f"SDK App {suffix}", slug=f"sdk-app-{suffix}", provider=oauth.pk)
        ),
    )
    step("read application", lambda: core.core_applications_retrieve(slug=app.slug))
    step("list applications", lambda: core.core_applications_list())
    binding = step(
        "bind group to application",
        lambda: policies.policies_bindings_create(ak.PolicyBindingRequest(target=app.pbm_uuid, group=group.pk, order=0)),
    )
    step("list bindings", lambda: policies.policies_bindings_list(target=app.pbm_uuid))
    step("delete binding", lambda: policies.policies_bindings_destroy(policy_binding_uuid=binding.pk))

    outpost_list = step("list outposts", lambda: outposts.outposts_instances_list())
    embedded = [o for o in outpost_list.results if o.managed == "goauthentik.io/outposts/embedded"][0]
    step(
        "assign proxy provider to embedded outpost",
        lambda: outposts.outposts_instances_partial_update(
            uuid=embedded.pk, patched_outpost_request=ak.PatchedOutpostRequest(providers=[proxy.pk])
        ),
    )
    step("list invitations", lambda: stages.stages_invitation_invitations_list())
    step("list OAuth sources", lambda: sources.sources_oauth_list())
    step("list events", lambda: events.events_events_list())
    step("list tokens", lambda: core.core_tokens_list())
    step("list authenticated sessions", lambda: core.core_authenticated_sessions_list())
    step(
        "create token",
        lambda: core.core_tokens_create(ak.TokenRequest(identifier=f"sdk-token-{suffix}", intent="api", expiring=False)),
    )

    def duplicate():
        try:
            core.core_groups_create(ak.GroupRequest(name=f"SDK Group {suffix}"))
        except ApiException as e:
            assert e.status == 400 and "name" in (e.body or ""), e
            return
        raise AssertionError("a duplicate group name was accepted")

    step("duplicate group name is a 400 naming the field", duplicate)
    step("delete application", lambda: core.core_applications_destroy(slug=app.slug))
    step("delete user", lambda: core.core_users_destroy(id=user.pk))
    print("authentik-client check passed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
