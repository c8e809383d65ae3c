"""Drives Gatehouse's policy, stage and stage-binding API through the authentik-client SDK.

Usage: policies_stages_check.py PHASE BASE_URL ADMIN_TOKEN

PHASE is one of
  bind    create a reputation policy, change it, bind it at the password stage of the default
          authentication flow (found by listing that flow's stage bindings); also create, change
          and delete expression policies, stages of each kind and a flow of them
  unblock list the reputation scores failed logins left and delete them
  unbind  delete the binding and the policy; nothing of them is left
  read    read core/users/me, sources/all and crypto/certificatekeypairs
The test that runs the phases logs in between them to see each change take effect. Exits 0
when every step passed, printing each step and, last, "<phase> passed".
"""

import sys

import authentik_client as ak
from authentik_client.exceptions import ApiException

POLICY = "brute-force-api"
FLOW = "default-authentication-flow"


def step(name, fn):
    print(f"- {name}", flush=True)
    return fn()


def refused(fn, status, field):
    try:
        fn()
    except ApiException as e:
        assert e.status == status, (e.status, e.body)
        assert field in e.body, e.body
        return
    raise AssertionError(f"expected HTTP {status} naming {field}")


def apis(base_url, token):
    client = ak.ApiClient(ak.Configuration(host=f"{base_url}/api/v3", access_token=token))
    return ak.PoliciesApi(client), ak.StagesApi(client), ak.FlowsApi(client)


def bind(policies, stages, flows):
    created = step(
        "create a reputation policy",
        lambda: policies.policies_reputation_create(
            ak.ReputationPolicyRequest(name=POLICY, check_ip=True, check_username=True, threshold=-5)
        ),
    )
    assert created.threshold == -5 and created.check_ip and created.check_username, created
    assert created.component == "ak-policy-reputation-form", created
    assert created.bound_to == 0, created
    changed = step(
        "lower its threshold to one failure",
        lambda: policies.policies_reputation_partial_update(
            created.pk, ak.PatchedReputationPolicyRequest(threshold=-1)
        ),
    )
    assert changed.threshold == -1 and changed.name == POLICY, changed
    listed = step("list reputation policies", lambda: policies.policies_reputation_list(search="brute"))
    assert [p.pk for p in listed.results] == [created.pk], listed

    flow = step("read the authentication flow", lambda: flows.flows_instances_retrieve(FLOW))
    bindings = step(
        "list the flow's stage bindings",
        lambda: flows.flows_bindings_list(target=flow.pk, ordering="order"),
    )
    names = [b.stage_obj.name for b in bindings.results]
    assert names[:2] == ["default-authentication-identification", "default-authentication-password"], names
    assert all(b.target == flow.pk and not b.evaluate_on_plan for b in bindings.results), bindings
    password = bindings.results[1]
    assert password.stage_obj.component == "ak-stage-password-form", password.stage_obj
    assert FLOW in [f.slug for f in password.stage_obj.flow_set], password.stage_obj
    bound = step(
        "bind the policy at the password stage",
        lambda: policies.policies_bindings_create(
            ak.PolicyBindingRequest(policy=created.pk, target=password.pk, order=0)
        ),
    )
    assert bound.target == password.pk and bound.policy_obj.name == POLICY, bound
    at_stage = step(
        "list the policies bound at that stage",
        lambda: policies.policies_bindings_list(target=password.pk),
    )
    assert [b.pk for b in at_stage.results] == [bound.pk], at_stage
    again = policies.policies_reputation_retrieve(created.pk)
    assert again.bound_to == 1, again

    expression_policies(policies)
    stage_kinds(stages, flows)


def expression_policies(policies):
    refused(
        lambda: policies.policies_expression_create(
            ak.ExpressionPolicyRequest(name="broken", expression="user.username ==")
        ),
        400,
        "expression",
    )
    made = step(
        "create an expression policy",
        lambda: policies.policies_expression_create(
            ak.ExpressionPolicyRequest(name="admins-only", expression='"admins" in user.groups')
        ),
    )
    assert made.expression == '"admins" in user.groups', made
    renamed = step(
        "change it",
        lambda: policies.policies_expression_update(
            made.pk,
            ak.ExpressionPolicyRequest(name="admins-only", expression='"staff" in user.groups'),
        ),
    )
    assert renamed.expression == '"staff" in user.groups', renamed
    everything = step("list policies of every kind", lambda: policies.policies_all_list(ordering="name"))
    kinds = {p.name: p.component for p in everything.results}
    assert kinds["admins-only"] == "ak-policy-expression-form", kinds
    assert kinds[POLICY] == "ak-policy-reputation-form", kinds
    refused(lambda: policies.policies_reputation_retrieve(made.pk), 404, "detail")
    step("delete it through policies/all", lambda: policies.policies_all_destroy(made.pk))
    refused(lambda: policies.policies_expression_retrieve(made.pk), 404, "detail")


def stage_kinds(stages, flows):
    refused(
        lambda: stages.stages_user_login_create(
            ak.UserLoginStageRequest(name="api-login", session_duration="fortnight")
        ),
        400,
        "session_duration",
    )
    made = [
        step("create an identification stage", lambda: stages.stages_identification_create(
            ak.IdentificationStageRequest(name="api-identification", user_fields=["username", "email"]))),
        step("create a password stage", lambda: stages.stages_password_create(
            ak.PasswordStageRequest(name="api-password", backends=["authentik.core.auth.InbuiltBackend"]))),
        step("create an invitation stage", lambda: stages.stages_invitation_stages_create(
            ak.InvitationStageRequest(name="api-invitation", continue_flow_without_invitation=True))),
        step("create a user-write stage", lambda: stages.stages_user_write_create(
            ak.UserWriteStageRequest(name="api-user-write", user_creation_mode="never_create"))),
        step("create a user-login stage", lambda: stages.stages_user_login_create(
            ak.UserLoginStageRequest(name="api-login", session_duration="hours=12"))),
        step("create a user-logout stage", lambda: stages.stages_user_logout_create(
            ak.UserLogoutStageRequest(name="api-logout"))),
        step("create a deny stage", lambda: stages.stages_deny_create(
            ak.DenyStageRequest(name="api-deny", deny_message="Not today."))),
    ]
    assert made[1].backends == ["authentik.core.auth.InbuiltBackend"], made[1]
    assert made[2].continue_flow_without_invitation is True, made[2]
    assert made[3].user_creation_mode == "never_create" and made[3].user_type == "internal", made[3]
    assert made[4].remember_me_offset == "seconds=0", made[4]
    assert made[6].deny_message == "Not today.", made[6]
    login = step("change the session length", lambda: stages.stages_user_login_partial_update(
        made[4].pk, ak.PatchedUserLoginStageRequest(session_duration="days=1")))
    assert login.session_duration == "days=1" and login.name == "api-login", login
    ident = step("ask for no identifier", lambda: stages.stages_identification_partial_update(
        made[0].pk, ak.PatchedIdentificationStageRequest(user_fields=[])))
    assert ident.user_fields == [], ident
    everything = step("list stages of every kind", lambda: stages.stages_all_list(search="api-"))
    assert sorted(s.name for s in everything.results) == sorted(s.name for s in made), everything
    refused(lambda: stages.stages_deny_retrieve(made[4].pk), 404, "detail")

    refused(
        lambda: stages.stages_consent_create(ak.ConsentStageRequest(name="api-consent", mode="always_require")),
        400,
        "mode",
    )
    consent = step("create a consent stage", lambda: stages.stages_consent_create(
        ak.ConsentStageRequest(name="api-consent", mode="permanent")))
    assert consent.mode == "permanent" and consent.component == "ak-stage-consent-form", consent
    mfa = step("list authenticator-validation stages", lambda: stages.stages_authenticator_validate_list())
    assert [m.name for m in mfa.results] == ["default-authentication-mfa-validation"], mfa
    assert mfa.results[0].not_configured_action == "skip", mfa
    refused(
        lambda: stages.stages_authenticator_validate_partial_update(
            mfa.results[0].pk, ak.PatchedAuthenticatorValidateStageRequest(device_classes=["webauthn"])),
        400,
        "device_classes",
    )
    stages.stages_all_destroy(consent.pk)

    flow = step("create a flow", lambda: flows.flows_instances_create(ak.FlowRequest(
        name="API flow", slug="api-flow", title="API flow", designation="authentication")))
    first = step("bind a stage into it", lambda: flows.flows_bindings_create(
        ak.FlowStageBindingRequest(target=flow.pk, stage=made[0].pk, order=10)))
    assert first.policy_engine_mode == "any" and first.re_evaluate_policies, first
    refused(
        lambda: flows.flows_bindings_create(ak.FlowStageBindingRequest(
            target=flow.pk, stage=made[1].pk, order=20, evaluate_on_plan=True)),
        400,
        "evaluate_on_plan",
    )
    second = step("bind another", lambda: flows.flows_bindings_create(
        ak.FlowStageBindingRequest(target=flow.pk, stage=made[4].pk, order=20, policy_engine_mode="all")))
    moved = step("move the first behind it", lambda: flows.flows_bindings_partial_update(
        first.pk, ak.PatchedFlowStageBindingRequest(order=30)))
    assert moved.order == 30 and moved.stage == made[0].pk, moved
    order = flows.flows_bindings_list(target=flow.pk, ordering="order")
    assert [b.stage for b in order.results] == [made[4].pk, made[0].pk], order
    step("unbind one", lambda: flows.flows_bindings_destroy(second.pk))
    assert flows.flows_instances_retrieve("api-flow").stages == [made[0].pk]
    for stage in made:
        stages.stages_all_destroy(stage.pk)
    assert flows.flows_bindings_list(target=flow.pk).pagination.count == 0
    flows.flows_instances_destroy("api-flow")


def unblock(policies, _stages, _flows):
    scores = step("list reputation scores", lambda: policies.policies_reputation_scores_list(ordering="identifier"))
    assert scores.pagination.count >= 1, scores
    assert all(s.score < 0 for s in scores.results), scores
    assert "alice@example.com" in [s.identifier for s in scores.results], scores
    for s in scores.results:
        step(f"delete the score of {s.identifier or '*'} from {s.ip or '*'}",
             lambda: policies.policies_reputation_scores_destroy(s.pk))
    assert policies.policies_reputation_scores_list().pagination.count == 0


def unbind(policies, _stages, _flows):
    found = policies.policies_reputation_list(name=POLICY).results
    assert len(found) == 1, found
    policy = found[0]
    bindings = policies.policies_bindings_list(policy=policy.pk).results
    assert len(bindings) == 1, bindings
    step("delete the binding", lambda: policies.policies_bindings_destroy(bindings[0].pk))
    step("delete the policy", lambda: policies.policies_reputation_destroy(policy.pk))
    refused(lambda: policies.policies_all_retrieve(policy.pk), 404, "detail")
    assert POLICY not in [p.name for p in policies.policies_all_list().results]


def read(base_url, token):
    client = ak.ApiClient(ak.Configuration(host=f"{base_url}/api/v3", access_token=token))
    me = step("read core/users/me", lambda: ak.CoreApi(client).core_users_me_retrieve())
    assert me.user.is_superuser and me.original is None, me
    assert [u.pk for u in me.users] == [me.user.pk], me
    sources = ak.SourcesApi(client)
    google = step("create an OAuth source", lambda: sources.sources_oauth_create(ak.OAuthSourceRequest(
        name="Google", slug="google", provider_type="google", consumer_key="id.example.com",
        consumer_secret="not-a-real-secret")))
    listed = step("list sources of every kind", lambda: sources.sources_all_list())
    assert [(s.slug, s.component) for s in listed.results] == [("google", "ak-source-oauth-form")], listed
    step("delete it through sources/all", lambda: sources.sources_all_destroy(google.slug))
    assert sources.sources_oauth_list().pagination.count == 0
    crypto = ak.CryptoApi(client)
    pairs = step("list the signing key pairs", lambda: crypto.crypto_certificatekeypairs_list())
    assert sorted(p.key_type for p in pairs.results) == ["ec", "rsa"], pairs
    assert all(p.private_key_available and p.fingerprint_sha256 is None for p in pairs.results), pairs
    one = step("read one", lambda: crypto.crypto_certificatekeypairs_retrieve(pairs.results[0].pk))
    assert one.name == pairs.results[0].name, one
    refused(lambda: crypto.crypto_certificatekeypairs_retrieve("00000000-0000-0000-0000-000000000000"), 404, "detail")


PHASES = {"bind": bind, "unblock": unblock, "unbind": unbind}

if __name__ == "__main__":
    phase, base_url, token = sys.argv[1:4]
    if phase == "read":
        read(base_url, token)
    else:
        PHASES[phase](*apis(base_url, token))
    print(f"{phase} passed")
